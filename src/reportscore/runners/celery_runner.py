"""Distributed mode: hand committed job ids to Celery workers through the broker.

Publishing happens on one background thread so a POST never waits on the broker: when the broker is down the
job is already committed, the publish fails fast, and the reconciler publishes it again later.

A job handed over here gets a pending hint in this process's task cache (when the finish announcements are being
received), so the client's long-poll that usually follows waits for the announcement instead of reading the store.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from celery import Celery

from reportscore.batching import Limits, ThreadBatches
from reportscore.monitoring import metrics
from reportscore.periodic import Periodic
from reportscore.runners.task_names import SCORE_JOBS_TASK, SCORE_TASK
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import jobs as jobs_repo
from reportscore.storage.repositories.jobs import FeatureRows

if TYPE_CHECKING:
    from reportscore.jobs.cache import TaskCache
    from reportscore.jobs.notifications import RedisSubscriber

log = logging.getLogger(__name__)

PUBLISH_BATCH_MAX = 500
"""Jobs published in one round trip to the broker at most."""


class CeleryRunner:
    uses_features = False
    """Workers read a job's reports from the store: no in-memory hand-over."""

    def __init__(
        self,
        *,
        db: Database,
        celery_app: Celery,
        settings: Settings,
        cache: TaskCache | None = None,
        subscriber: RedisSubscriber | None = None,
    ) -> None:
        self._db = db
        self._cache = cache
        self._subscriber = subscriber
        self._app = celery_app
        self._settings = settings
        # Whatever is already waiting goes in the same round trip (no linger: a POST's job goes out at once).
        self._outbox: ThreadBatches[tuple[str, int]] = ThreadBatches(Limits(max_items=PUBLISH_BATCH_MAX))
        self._thread: threading.Thread | None = None
        self._pending_cache: tuple[float, int] = (0.0, 0)
        self._reserved = 0
        self._closing = False
        self.broker_ok = True

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._publish_loop, name="celery-publisher", daemon=True)
        self._thread.start()

    # --- admission --------------------------------------------------------------------------------------------
    def pending(self) -> int:
        """Unfinished jobs in the shared store (cached for a second: every API process reads the same number)."""
        at, count = self._pending_cache
        if time.monotonic() - at > 1.0:
            with self._db.read() as session:
                count = jobs_repo.count_unfinished(session)
            self._pending_cache = (time.monotonic(), count)
        return count + self._reserved

    def has_capacity(self) -> bool:
        return not self._closing and self.pending() < self._settings.max_pending_jobs

    def reserve(self) -> None:
        self._reserved += 1

    def release(self) -> None:
        self._reserved -= 1

    def submit(
        self, job_id: str, n_reports: int, *, owner: str | None = None, features: FeatureRows | None = None
    ) -> None:
        self._reserved -= 1
        self._pending_cache = (self._pending_cache[0], self._pending_cache[1] + 1)
        if owner is not None:
            self._hint(job_id, owner)
        # The hint goes first, so the announcement after this publish cannot precede it. A worker may still claim
        # the committed job with other pending ones before this point: that hint is stale, and delays one
        # long-poll by at most its validity.
        self._outbox.put((job_id, n_reports))

    def _hint(self, job_id: str, owner: str) -> None:
        """Record that ``job_id`` is pending here and its finish will be announced (only while subscribed)."""
        valid_s = self._settings.pending_hint_s
        if self._cache is None or self._subscriber is None or valid_s <= 0:
            return
        epoch = self._subscriber.live_epoch()
        if epoch is not None:
            self._cache.hint_pending(job_id, owner=owner, epoch=epoch, valid_s=valid_s)

    # --- publishing -------------------------------------------------------------------------------------------
    def publish_now(self, job_ids: list[str]) -> int:
        """Publish synchronously, one message per job (used by the reconciler: a re-published job may be one that
        killed its worker, and goes alone); returns how many went out."""
        sent = 0
        for start in range(0, len(job_ids), PUBLISH_BATCH_MAX):
            chunk = job_ids[start : start + PUBLISH_BATCH_MAX]
            if not self._send([[job_id] for job_id in chunk]):
                break
            sent += len(chunk)
        return sent

    def messages(self, jobs: list[tuple[str, int]]) -> list[list[str]]:
        """Jobs committed together, cut into messages of at most ``publish_max_jobs_per_message`` jobs and
        ``batch_max_reports`` reports (a larger job goes alone), in order.

        Why several jobs per message: every message costs the worker a Redis round trip to reserve it, a hand-over
        to its pool process, a claim transaction and an ack; one message for jobs that arrived together pays that
        once. Prefetch stays at one message per pool process, and a worker woken by the message claims its jobs
        (and others pending, ``worker_batch_max_jobs``) in one ``FOR UPDATE SKIP LOCKED`` transaction.
        """
        max_jobs = self._settings.publish_max_jobs_per_message
        max_reports = self._settings.batch_max_reports
        out: list[list[str]] = []
        current: list[str] = []
        reports = 0
        for job_id, n_reports in jobs:
            if current and (len(current) >= max_jobs or reports + n_reports > max_reports):
                out.append(current)
                current, reports = [], 0
            current.append(job_id)
            reports += n_reports
        if current:
            out.append(current)
        return out

    def _send(self, messages: list[list[str]]) -> bool:
        """Each message's jobs as one task, all written in one round trip on one pooled producer (kombu's
        ``Producer.batch``: a Redis pipeline; other transports publish them one by one). A single job keeps the
        one-job task, named by its job id. True when every message went out."""
        try:
            with self._app.producer_or_acquire() as producer, _batch(producer):
                for job_ids in messages:
                    single = len(job_ids) == 1
                    self._app.send_task(
                        SCORE_TASK if single else SCORE_JOBS_TASK,
                        args=[job_ids[0] if single else job_ids],
                        task_id=job_ids[0] if single else str(uuid.uuid4()),
                        queue=self._settings.queue_name,
                        retry=False,
                        producer=producer,
                    )
        except Exception as exc:  # kombu raises several kinds: connection refused, timeouts, channel errors
            # Some of them may have gone out: a duplicate message is harmless (the first committed result wins).
            if self.broker_ok:
                log.warning("broker unavailable; jobs stay for the reconciler", extra={"error": repr(exc)[:200]})
            self.broker_ok = False
            return False
        self.broker_ok = True
        return True

    def _publish_loop(self) -> None:
        down_since = 0.0
        while (batch := self._outbox.take()) is not None:
            # While the broker is down, don't pay a connection timeout per job: the reconciler re-publishes
            # everything left PENDING once the broker is back, one message per job (``publish_now``), which is
            # this loop's retry item by item (a failed publish is the broker's failure, never a job's).
            if (self.broker_ok or time.monotonic() - down_since >= 1.0) and not self._send(self.messages(batch)):
                down_since = time.monotonic()

    def broker_status(self) -> str:
        try:
            with self._app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=self._settings.broker_timeout_s)
        except Exception as exc:
            return f"down: {type(exc).__name__}"
        return "ok"

    async def stop(self, *, drain_s: float) -> None:
        self._closing = True
        self._outbox.close()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, min(drain_s, 10.0))


def _batch(producer: Any) -> AbstractContextManager[Any]:
    """kombu >= 5.7 buffers a batch's publishes (``Producer.batch``); older versions publish each at once."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=2 * PUBLISH_BATCH_MAX) if batch is not None else nullcontext()


class Reconciler(Periodic):
    """Re-publishes stranded jobs: PENDING ones whose message was lost and STARTED ones whose lease expired.

    Every API process runs one; a PostgreSQL advisory lock makes sure only one of them works at a time.
    """

    LOCK_KEY = 0x5265_7073_6372  # "Repscr"

    def __init__(self, *, db: Database, runner: CeleryRunner, settings: Settings) -> None:
        super().__init__(name="reconciler", interval_s=settings.reconcile_interval_s)
        self._db = db
        self._runner = runner
        self._settings = settings

    def run_once(self) -> int:
        """One pass; returns how many jobs were re-published (0 when another process holds the lock)."""
        with self._db.write() as session:
            if not jobs_repo.try_exclusive_pass(session, key=self.LOCK_KEY):
                return 0
            now = datetime.now(UTC)
            stranded = jobs_repo.find_stranded(
                session, now=now, pending_age_s=self._settings.reconcile_pending_age_s, limit=2000
            )
            if not stranded:
                return 0
            # Marked and committed before the publish: a worker that receives the message at once must not find
            # the row locked by this transaction (its claim skips locked rows, and the job would wait for the
            # next re-publish).
            jobs_repo.mark_enqueued(session, job_ids=stranded, at=now)
        sent = self._runner.publish_now(stranded)
        metrics.observe_reconciler_pass(published=sent, unsent=len(stranded) - sent)
        if sent < len(stranded):  # the broker is away: the rest are found again at the next pass
            with self._db.write() as session:
                jobs_repo.mark_enqueued(session, job_ids=stranded[sent:], at=None)
        if sent:
            log.info("reconciler re-published stranded jobs", extra={"jobs": sent, "found": len(stranded)})
        return sent
