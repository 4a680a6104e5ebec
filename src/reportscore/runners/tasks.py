"""Celery tasks — thin: each calls ``score_jobs``, the same function the in-process runner calls."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy.exc import OperationalError

from reportscore.gc_tuning import tune_gc
from reportscore.monitoring import metrics
from reportscore.monitoring.logs import flush_logs
from reportscore.runners.task_names import SCORE_JOBS_TASK, SCORE_TASK
from reportscore.runners.worker_state import get_state, reset_state
from reportscore.scoring.formats.base import ModelUnavailableError
from reportscore.scoring.service import score_jobs
from reportscore.settings import Settings

log = logging.getLogger(__name__)


def register(app: Celery, settings: Settings) -> None:
    @worker_process_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _after_fork(**_: Any) -> None:
        reset_state()
        model = get_state(settings).registry.current  # load and warm the model once per pool process
        metrics.worker_process_started(model_name=model.name, model_version=model.version)
        tune_gc()

    @worker_process_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def _before_exit(**_: Any) -> None:
        metrics.worker_process_stopping()
        flush_logs()  # pool processes leave with os._exit, which skips exit handlers

    def score_message(task: Task, job_ids: list[str]) -> None:
        state = get_state(settings)
        pending = list(job_ids)
        while pending:
            try:
                outcome = score_jobs(
                    db=state.db,
                    model=state.registry.current,
                    job_ids=pending,
                    max_attempts=settings.max_attempts,
                    lease_s=settings.lease_s,
                    leases=state.leases,
                    # Micro-batching across jobs with prefetch kept at one: this message's jobs plus whatever else
                    # is pending and not locked by another worker. Their own messages arrive later and write nothing.
                    extra_pending=settings.worker_batch_max_jobs if state.db.batch_claims else 0,
                    extra_max_reports=settings.batch_max_reports,
                )
            except OperationalError as exc:
                # The database is unreachable (restart, failover): try again shortly. The jobs stay unfinished in
                # the database either way, so the reconciler also covers a retry that never arrives.
                log.warning(
                    "database unavailable; retrying", extra={"task_id": pending[0], "error": type(exc.orig).__name__}
                )
                raise task.retry(countdown=2) from exc
            except ModelUnavailableError as exc:  # a remote model is down: its jobs were released, try them again
                raise task.retry(countdown=2) from exc
            if state.publisher is not None:
                # The results travel with the notification: a woken long-poll answers without reading the store.
                state.publisher.publish(outcome.finished, views=outcome.views, owners=outcome.owners)
            state.shadows.offer(job_ids=outcome.succeeded, rows=outcome.rows)  # after the commit; never blocks
            # A job being retried went alone (it may be what killed the last worker); the others follow.
            pending = outcome.deferred

    @app.task(  # type: ignore[untyped-decorator]
        name=SCORE_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None
    )
    def score_job(self: Task, job_id: str) -> None:
        score_message(self, [job_id])

    @app.task(  # type: ignore[untyped-decorator]
        name=SCORE_JOBS_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None
    )
    def score_job_batch(self: Task, job_ids: list[str]) -> None:
        """The jobs an API process committed together, in one message (``publish_max_jobs_per_message``)."""
        score_message(self, job_ids)
