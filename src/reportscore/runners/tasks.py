"""Celery tasks — thin: each calls ``score_jobs``, the same function the in-process runner calls."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy.exc import OperationalError

from reportscore.monitoring import metrics
from reportscore.monitoring.logs import flush_logs
from reportscore.runners.worker_state import get_state, reset_state
from reportscore.scoring.service import score_jobs
from reportscore.settings import Settings

log = logging.getLogger(__name__)


def register(app: Celery, settings: Settings) -> None:
    @worker_process_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _after_fork(**_: Any) -> None:
        reset_state()
        model = get_state(settings).registry.current  # load and warm the model once per pool process
        metrics.worker_process_started(model_name=model.name, model_version=model.version)

    @worker_process_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def _before_exit(**_: Any) -> None:
        metrics.worker_process_stopping()
        flush_logs()  # pool processes leave with os._exit, which skips exit handlers

    @app.task(  # type: ignore[untyped-decorator]
        name="scoring.score_job", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None
    )
    def score_job(self: Task, job_id: str) -> None:
        state = get_state(settings)
        try:
            outcome = score_jobs(
                db=state.db,
                model=state.registry.current,
                job_ids=[job_id],
                max_attempts=settings.max_attempts,
                lease_s=settings.effective_lease_s,
                # Micro-batching across jobs with prefetch kept at one: this message's job plus whatever else is
                # pending and not locked by another worker. Their own messages arrive later and write nothing.
                extra_pending=0 if state.db.is_sqlite else settings.worker_batch_max_jobs,
                extra_max_reports=settings.batch_max_reports,
            )
        except OperationalError as exc:
            # The database is unreachable (restart, failover): try again shortly. The job stays unfinished in the
            # database either way, so the reconciler also covers a retry that never arrives.
            log.warning("database unavailable; retrying", extra={"task_id": job_id, "error": type(exc.orig).__name__})
            raise self.retry(countdown=2) from exc
        if state.publisher is not None:
            # The results travel with the notification: a woken long-poll answers without reading the store.
            state.publisher.publish(outcome.finished, views=outcome.views, owners=outcome.owners)
