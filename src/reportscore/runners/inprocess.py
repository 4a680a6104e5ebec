"""Embedded mode: a bounded asyncio queue feeding scoring threads inside the API process.

Each dispatcher coroutine owns one thread: it waits for a job id, gathers whatever else is already queued (up to
``batch_max_reports``), and scores the micro-batch in its thread with one model call and one result transaction,
so the event loop never blocks on the model or the database.

With a group committer, claims and results are written by the same single writer as the submits (SQLite has one
write lock: scoring threads never wait for it, and one durable commit covers submits, claims and results alike).
Reports submitted through this process are handed over in memory (bounded), and finished jobs are recorded in the
task cache before long-polls are woken, so neither needs a read of the store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor

from reportscore.batching import AsyncBatches, Limits, isolate
from reportscore.jobs.cache import TaskCache
from reportscore.jobs.notifications import LocalNotifier
from reportscore.scoring.registry import ModelRegistry
from reportscore.scoring.service import BatchOutcome, score_jobs
from reportscore.shadow.scorer import ShadowScorer
from reportscore.storage.db import Database
from reportscore.storage.group_commit import GroupCommitter
from reportscore.storage.repositories import jobs as jobs_repo

log = logging.getLogger(__name__)

_Queued = tuple[str, int, bool]
"""A queued job: its id, its number of reports, and whether it must be scored alone."""


class InProcessRunner:
    uses_features = True
    """Scoring threads take a job's reports as committed from ``submit`` instead of reading them back."""

    def __init__(
        self,
        *,
        db: Database,
        registry: ModelRegistry,
        notifier: LocalNotifier,
        threads: int,
        max_pending: int,
        batch_max_reports: int,
        max_attempts: int,
        batch_wait_ms: float = 0.0,
        committer: GroupCommitter | None = None,
        cache: TaskCache | None = None,
        max_reports_in_memory: int = 100_000,
        shadows: ShadowScorer | None = None,
    ) -> None:
        self._shadows = shadows
        self._db = db
        self._committer = committer
        self._cache = cache
        self._features: dict[str, jobs_repo.FeatureRows] = {}
        self._features_reports = 0
        self._max_reports_in_memory = max_reports_in_memory
        self._registry = registry
        self._notifier = notifier
        self._threads = threads
        self._max_pending = max_pending
        self._batch_max_reports = batch_max_reports
        self._max_attempts = max_attempts
        self._batch_wait_s = batch_wait_ms / 1000.0
        # Bounded by the pending-jobs limit plus what recovery may add at start; admission is by ``reserve``.
        self._queue: AsyncBatches[_Queued] | None = None
        self._pending = 0
        self._executor: ThreadPoolExecutor | None = None
        self._dispatchers: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Future[BatchOutcome]] = set()
        self._closing = False

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="scoring")
        loop = asyncio.get_running_loop()
        recovered = await loop.run_in_executor(self._executor, self._unfinished)
        self._queue = AsyncBatches(
            Limits(
                max_size=self._batch_max_reports,
                size=lambda item: item[1],
                linger_s=self._batch_wait_s,
                # A job whose earlier attempt died with the process (or failed the store) is scored alone, so a
                # poison job that kills the process cannot use up the attempts of innocent jobs batched with it.
                alone=lambda item: item[2],
            ),
            maxsize=self._max_pending + len(recovered),
        )
        for job_id, n_reports, attempts in recovered:
            self._pending += 1
            # A job whose earlier attempt died with the process is scored alone (see the queue's limits).
            self._queue.put_nowait((job_id, n_reports, attempts > 0))
        if recovered:
            log.info("recovered unfinished jobs", extra={"jobs": len(recovered)})
        self._dispatchers = [asyncio.create_task(self._dispatch(i)) for i in range(self._threads)]

    def _unfinished(self) -> list[tuple[str, int, int]]:
        # One process owns the SQLite store, so anything STARTED now was being scored by a process that died.
        with self._db.write() as session:
            jobs_repo.release_started(session)
            return jobs_repo.list_unfinished(session)

    def has_capacity(self) -> bool:
        return not self._closing and self._pending < self._max_pending

    def reserve(self) -> None:
        self._pending += 1

    def release(self) -> None:
        self._pending -= 1

    def submit(
        self, job_id: str, n_reports: int, *, owner: str | None = None, features: jobs_repo.FeatureRows | None = None
    ) -> None:
        assert self._queue is not None, "runner not started"
        if features is not None and self._features_reports + n_reports <= self._max_reports_in_memory:
            self._features[job_id] = features
            self._features_reports += n_reports
        if owner is not None and self._cache is not None:
            self._cache.accepted(job_id, owner=owner, n_reports=n_reports)
        self._queue.put_nowait((job_id, n_reports, False))

    def pending(self) -> int:
        return self._pending

    def broker_status(self) -> str:
        return "not used (embedded mode)"

    async def _dispatch(self, index: int) -> None:
        assert self._queue is not None
        while not self._closing:
            items = await self._queue.take()
            for part, outcome in await isolate(items, self._score):
                if isinstance(outcome, Exception):
                    # The store failed (disk full, database locked too long) even for this job alone: it is still
                    # unfinished in the database, so put it back (alone) and try again shortly. Nothing is dropped.
                    log.error("scoring failed; job re-queued", extra={"jobs": len(part), "error": repr(outcome)})
                    await asyncio.sleep(1.0)
                    for job_id, n_reports, _ in part:
                        await self._queue.put((job_id, n_reports, True))
                    continue
                self._finished([job_id for job_id, _, _ in part], outcome)

    async def _score(self, items: list[_Queued]) -> BatchOutcome:
        """Score the jobs in one model call and one result transaction, on this runner's threads."""
        assert self._executor is not None
        batch = [job_id for job_id, _, _ in items]
        if self._cache is not None:
            self._cache.started(batch)
        work = functools.partial(
            score_jobs,
            db=self._db,
            model=self._registry.current,
            job_ids=batch,
            max_attempts=self._max_attempts,
            write=self._committer.run_sync if self._committer is not None else None,
            features={job_id: self._features[job_id] for job_id in batch if job_id in self._features},
        )
        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        self._in_flight.add(future)
        try:
            return await asyncio.shield(future)
        finally:
            self._in_flight.discard(future)

    def _finished(self, batch: list[str], outcome: BatchOutcome) -> None:
        self._pending -= len(batch)
        for job_id in batch:
            rows = self._features.pop(job_id, None)
            if rows is not None:
                self._features_reports -= len(rows.report_ids)
        if self._cache is not None:
            self._cache.finished(list(outcome.views.values()), outcome.owners)
            self._cache.forget(batch)  # anything not in views (exhausted, skipped): the store knows
        self._notifier.notify(outcome.finished)
        self._notifier.notify(outcome.skipped)
        if self._shadows is not None:  # after the commit and the wake-ups; never blocks
            self._shadows.offer(job_ids=outcome.succeeded, rows=outcome.rows)

    async def stop(self, *, drain_s: float) -> None:
        self._closing = True
        in_flight = set(self._in_flight)
        for task in self._dispatchers:
            task.cancel()
        if in_flight:
            done, not_done = await asyncio.wait(in_flight, timeout=drain_s)
            for future in done:  # their dispatchers are gone: a failure is theirs to log, not asyncio's
                if not future.cancelled() and future.exception() is not None:
                    log.warning("shutdown: in-flight scoring failed", exc_info=future.exception())
            if not_done:
                log.warning("shutdown: in-flight scoring did not finish in time", extra={"batches": len(not_done)})
        await asyncio.gather(*self._dispatchers, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
