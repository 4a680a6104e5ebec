"""Purge and maintenance: bounded batches, one short transaction each, so scoring never waits long for them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reportscore.storage.db import Database
from reportscore.storage.repositories import jobs as jobs_repo
from reportscore.storage.repositories import retention as retention_repo

log = logging.getLogger(__name__)

MAX_PAUSE_S = 1.0


@dataclass(frozen=True)
class PurgeResult:
    jobs: int
    batches: int
    drift_rows: int
    seconds: float
    before: datetime


def purge(
    db: Database,
    *,
    older_than_s: float,
    keep_labelled: bool,
    batch_jobs: int,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    yield_to_writers: bool = True,
) -> PurgeResult:
    """Delete finished jobs created more than ``older_than_s`` ago, ``batch_jobs`` per transaction, oldest first.

    After each batch it pauses as long as the batch took (at most a second), so that other writers (scoring,
    submissions) get the store at least half the time; ``progress`` is called with the jobs deleted so far."""
    started = time.perf_counter()
    before = (now or datetime.now(UTC)) - timedelta(seconds=older_than_s)
    total = batches = 0
    while True:
        t0 = time.perf_counter()
        with db.write() as session:
            n = retention_repo.purge_jobs(session, before=before, keep_labelled=keep_labelled, limit=batch_jobs)
        if n == 0:
            break
        total += n
        batches += 1
        if progress is not None:
            progress(total)
        if n < batch_jobs:
            break
        if yield_to_writers:
            time.sleep(min(time.perf_counter() - t0, MAX_PAUSE_S))
    with db.write() as session:
        drift_rows = retention_repo.purge_drift_windows(session, before=before)
    seconds = time.perf_counter() - started
    log.info(
        "purge finished",
        extra={"jobs": total, "batches": batches, "drift_rows": drift_rows, "before": before.isoformat()},
    )
    return PurgeResult(jobs=total, batches=batches, drift_rows=drift_rows, seconds=seconds, before=before)


@dataclass(frozen=True)
class MaintenanceResult:
    idempotency_keys: int
    callbacks: int


MAINTENANCE_LOCK_KEY = 0x5265_7073_6D6E  # "Repsmn"


def maintenance_pass(
    db: Database, *, callback_retention_s: float, batch: int, now: datetime | None = None
) -> MaintenanceResult | None:
    """One pass (None when another process is running one): forget expired idempotency keys and delete callbacks
    delivered more than ``callback_retention_s`` ago, ``batch`` rows per transaction until none is left."""
    at = now or datetime.now(UTC)
    keys = callbacks = 0
    while True:
        with db.write() as session:
            if not jobs_repo.try_exclusive_pass(session, key=MAINTENANCE_LOCK_KEY):
                return None
            n_keys = retention_repo.clear_expired_idempotency_keys(session, now=at, limit=batch)
            n_callbacks = retention_repo.delete_delivered_callbacks(
                session, before=at - timedelta(seconds=callback_retention_s), limit=batch
            )
        keys += n_keys
        callbacks += n_callbacks
        if n_keys < batch and n_callbacks < batch:
            break
    if keys or callbacks:
        log.info("maintenance pass", extra={"idempotency_keys_cleared": keys, "callbacks_deleted": callbacks})
    return MaintenanceResult(idempotency_keys=keys, callbacks=callbacks)
