"""The Celery application of distributed mode, built from Settings (never at import).

Reliability choices, all Celery/kombu features rather than home-made ones:
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after ``score_jobs`` committed,
  and a pool child killed mid-task puts its message back on the queue.
- ``worker_prefetch_multiplier=1``: a worker reserves one message per pool process, so no job waits behind a slow one.
- ``visibility_timeout`` > ``task_time_limit``: Redis redelivers a message whose worker vanished, never one that is
  still running.
- JSON only: a pickled message is refused by the worker.
- ``rediss://`` brokers get ``broker_use_ssl`` with the certificate check of REPORTSCORE_REDIS_TLS_CERT_REQS (default
  required; Celery refuses a ``rediss://`` URL without one).
- Task events are off unless REPORTSCORE_WORKER_TASK_EVENTS is set: Flower's own ``enable_events`` broadcast turns
  them on while Flower runs.
- No result backend: status and scores live in the database; Redis holds no per-task result keys.
- Redis keys all start with ``<redis_prefix>:`` (kombu's ``global_keyprefix``), so deployments and test runs that
  share a Redis never see each other's queues.
"""

from __future__ import annotations

import ssl
from typing import Any

from celery import Celery

from reportscore.runners.task_names import SCORE_JOBS_TASK, SCORE_TASK
from reportscore.settings import Settings

__all__ = ["SCORE_JOBS_TASK", "SCORE_TASK", "broker_transport_options", "create_celery_app"]


def broker_transport_options(settings: Settings, *, publisher: bool = False) -> dict[str, Any]:
    """``publisher``: the API's app, which only publishes. A publish that times out is not retried there (the job
    stays PENDING for the reconciler, as when the broker is down), which lets kombu write a batch of messages in
    one Redis pipeline: it refuses to when redis-py could replay a pipeline after a timeout."""
    assert settings.broker_url is not None
    url = settings.broker_url.get_secret_value()
    if url.startswith(("redis://", "rediss://")):
        return {
            "visibility_timeout": settings.visibility_timeout_s,
            "global_keyprefix": f"{settings.redis_prefix}:",
            "socket_timeout": max(settings.broker_timeout_s, 5.0),
            "socket_connect_timeout": settings.broker_timeout_s,
            "retry_on_timeout": not publisher,
        }
    return {"confirm_publish": True}


_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def broker_use_ssl(settings: Settings) -> dict[str, Any] | None:
    """Celery's ``broker_use_ssl`` for a ``rediss://`` broker; None for any other URL."""
    assert settings.broker_url is not None
    if not settings.broker_url.get_secret_value().startswith("rediss://"):
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[settings.redis_tls_cert_reqs]}
    if settings.redis_tls_ca_certs is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_certs)
    return options


def create_celery_app(settings: Settings, *, publisher: bool = False) -> Celery:
    """``publisher``: the app of an API process, which publishes jobs and never consumes them."""
    if settings.broker_url is None:
        raise ValueError("distributed mode needs REPORTSCORE_BROKER_URL")
    app = Celery("reportscore", broker=settings.broker_url.get_secret_value(), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_s,
        task_default_queue=settings.queue_name,
        task_routes={SCORE_TASK: {"queue": settings.queue_name}, SCORE_JOBS_TASK: {"queue": settings.queue_name}},
        broker_transport_options=broker_transport_options(settings, publisher=publisher),
        broker_connection_timeout=settings.broker_timeout_s,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_heartbeat=10,
        worker_hijack_root_logger=False,
        # Task events only when asked: Flower enables them remotely while it runs (each costs a Redis publish).
        worker_send_task_events=settings.worker_task_events,
        task_send_sent_event=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        enable_utc=True,
        timezone="UTC",
    )
    tls = broker_use_ssl(settings)
    if tls is not None:
        app.conf.broker_use_ssl = tls
    from reportscore.runners import tasks

    tasks.register(app, settings)
    return app
