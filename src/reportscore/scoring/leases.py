"""A heartbeat that keeps the leases of the jobs a process is scoring, so a short lease outlives a long job.

A claimed job is leased for ``lease_s``. While the process scores it, a background thread extends the lease of
every job it holds every ``lease_renew_interval_s``, in one UPDATE. When the process dies, renewals stop and the
lease runs out within ``lease_s``; the reconciler then re-publishes the job. A renewal that no longer finds a job
held by this attempt (reclaimed after the process was cut off longer than the lease) drops it: that attempt's
result is fenced out by its attempt number when it is written (``jobs_repo.save_results``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

from reportscore.monitoring import metrics
from reportscore.storage.db import Database
from reportscore.storage.repositories import jobs as jobs_repo

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of the jobs this process holds (job id -> attempt number) until they are released."""

    def __init__(self, *, db: Database, lease_s: float, interval_s: float) -> None:
        self._db = db
        self.lease_s = lease_s
        self._interval_s = interval_s
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def hold(self, claims: Mapping[str, int]) -> None:
        """Start renewing these just-claimed jobs (job id -> the claim's attempt number)."""
        with self._lock:
            self._held.update(claims)

    def release(self, job_ids: Iterable[str]) -> None:
        """Stop renewing these jobs (their results are written, or the attempt gave up)."""
        with self._lock:
            for job_id in job_ids:
                self._held.pop(job_id, None)

    @contextmanager
    def holding(self, claims: Mapping[str, int]) -> Iterator[None]:
        """Renew these just-claimed jobs while the block runs."""
        self.hold(claims)
        try:
            yield
        finally:
            self.release(claims)

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def renew_once(self) -> list[str]:
        """Extend the leases held now; returns the jobs found no longer held by their attempt (and drops them)."""
        held = self.held()
        if not held:
            return []
        with self._db.write() as session:
            renewed = set(jobs_repo.renew_leases(session, held=held, now=datetime.now(UTC), lease_s=self.lease_s))
        with self._lock:  # a job released meanwhile had its result written by this process: not lost
            lost = [j for j in held if j not in renewed and self._held.get(j) == held[j]]
            for job_id in lost:
                del self._held[job_id]
        metrics.observe_lease_renewals(renewed=len(renewed), lost=len(lost))
        for job_id in lost:
            log.warning(
                "lease lost: the job finished or was claimed again by a later attempt; this attempt's result "
                "will not be written",
                extra={"task_id": job_id, "attempt": held[job_id]},
            )
        return lost

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.renew_once()
            except Exception:  # the store is away: try again next tick (the lease covers a few missed beats)
                metrics.observe_lease_renewals(failed=1)
                log.warning("lease renewal failed", exc_info=True)
