"""The storage floor: CPU that the embedded store's own write path costs per job, measured in-process.

The service's repository functions on a fresh SQLite store migrated to head (WAL, ``synchronous=FULL``, the
service's engine settings), this process pinned to the service's core, for jobs of 1 and 100 reports written the way
the embedded service writes them: ``group`` jobs per transaction (its group commit), then

- **async**: the submit (job + reports inserted as PENDING), then the result (claim, then scores, model version and
  finish time written to the same rows) — what ``POST /predict`` and its scoring cost the store;
- **sync**: the ``POST /score`` persist (job + reports inserted already scored, one write).

CPU time of this thread per job (``time.thread_time``: fsync waits are not counted, they are not CPU), so it can be
set against the one-core budget of a target: it is the part of a job's cost that no change to the HTTP or model path
removes while every report is a durable row of its own.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from reportscore.jobs import submission as jobs_submission
from reportscore.storage.db import Database
from reportscore.storage.migrate import upgrade_to_head
from reportscore.storage.repositories import jobs as jobs_repo

BATCHES = (1, 100)
GROUP = 16
"""Jobs per transaction (the group commit shares one among concurrent requests; 16 is typical under load)."""
GROWN_REPORTS = 400_000
"""The grown store: the ``POST /score`` write measured again once this many reports are stored (a benchmark run's
store holds more than that by its B=100 rows), with the moderation queue's index and without it."""
QUEUE_INDEX = "ix_report_scores_queue"


def _cpu_per_job(run_group: Callable[[int], None], groups: int) -> float:
    """Microseconds of this thread's CPU per job over ``groups`` transactions of ``GROUP`` jobs."""
    run_group(0)  # warm-up
    t0 = time.thread_time()
    for i in range(groups):
        run_group(i + 1)
    return (time.thread_time() - t0) / (groups * GROUP) * 1e6


def measure(
    reports: Sequence[dict[str, Any]], *, cpus: set[int] | None, seconds: float, grown_reports: int = GROWN_REPORTS
) -> list[dict[str, Any]]:
    """Per job and per report CPU of the async (submit, claim, result) and sync (scored insert) writes."""
    before = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="rs-storage-floor-") as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'floor.db'}")
            upgrade_to_head(db)
            try:
                for batch in BATCHES:
                    groups = max(5, int(seconds * (40 if batch == 1 else 10)))
                    rows += _measure_batch(db, [dict(r) for r in reports[:batch]], groups)
            finally:
                db.dispose()
            grown = Database(f"sqlite:///{Path(tmp) / 'grown.db'}")
            upgrade_to_head(grown)
            try:
                rows += _measure_grown(
                    grown, [dict(r) for r in reports[:100]], max(5, int(seconds * 10)), grown_reports
                )
            finally:
                grown.dispose()
    finally:
        os.sched_setaffinity(0, before)
    return rows


def _measure_batch(db: Database, payload: list[dict[str, Any]], groups: int) -> list[dict[str, Any]]:
    batch = len(payload)
    scores = [0.5] * batch
    pending: list[list[jobs_submission.Submitted]] = []

    def submit_group(_i: int) -> None:
        pending.append(_async_submit(db, payload))

    def result_group(i: int) -> None:
        _async_result(db, pending[i], scores)

    def scored_group(i: int) -> None:
        _sync_scored(db, payload, [scores], i)

    submit = _cpu_per_job(submit_group, groups)
    result = _cpu_per_job(result_group, groups)
    scored = _cpu_per_job(scored_group, groups)
    common = {"batch": batch, "jobs_per_transaction": GROUP}
    return [
        {
            "flow": "async",
            **common,
            "cpu_us_per_job": submit + result,
            "cpu_us_per_report": (submit + result) / batch,
            "submit_us_per_job": submit,
            "result_us_per_job": result,
        },
        {"flow": "sync", **common, "cpu_us_per_job": scored, "cpu_us_per_report": scored / batch},
    ]


def _measure_grown(db: Database, payload: list[dict[str, Any]], groups: int, stored: int) -> list[dict[str, Any]]:
    """The scored write of B=100 jobs into a store that already holds ``stored`` reports, then the same
    without the moderation queue's index (each score lands at a random place in it: a page written per score)."""
    rng = random.Random(1)
    # scores spread over the index as real ones are (one list per job of a group, drawn before the timing)
    pool = [[rng.random() for _ in payload] for _ in range(4 * GROUP)]
    for i in range(stored // (GROUP * len(payload))):
        _sync_scored(db, payload, pool, i)
    rows: list[dict[str, Any]] = []
    for queue_index in (True, False):
        if not queue_index:
            with db.write() as session:
                session.execute(text(f"DROP INDEX {QUEUE_INDEX}"))
        cpu = _cpu_per_job(lambda i: _sync_scored(db, payload, pool, i), groups)
        rows.append(
            {
                "flow": "sync",
                "batch": len(payload),
                "jobs_per_transaction": GROUP,
                "cpu_us_per_job": cpu,
                "cpu_us_per_report": cpu / len(payload),
                "stored_reports": stored,
                "queue_index": queue_index,
            }
        )
    return rows


def _async_submit(db: Database, payload: list[dict[str, Any]]) -> list[jobs_submission.Submitted]:
    work = jobs_submission.submission(reports=payload, owner="bench", idempotency_key=None, ttl_s=0.0)
    with db.write() as session:
        return [work(session) for _ in range(GROUP)]


def _async_result(db: Database, jobs: list[jobs_submission.Submitted], scores: list[float]) -> None:
    """The claim, then the results, in two transactions (the embedded runner has the reports in memory)."""
    now = datetime.now(UTC)
    with db.write() as session:
        jobs_repo.claim_jobs(session, job_ids=[j.job_id for j in jobs], now=now, lease_s=300.0, max_attempts=3)
    results = [
        jobs_repo.JobResult(
            job_id=j.job_id,
            report_ids=j.report_ids or [],
            scores=scores,
            model_name="m",
            model_version="1",
            predict_ms=0.1,
            attempt=1,  # the claim above was each job's first
        )
        for j in jobs
    ]
    with db.write() as session:
        jobs_repo.save_results(session, results=results, finished_at=datetime.now(UTC))


def _sync_scored(db: Database, payload: list[dict[str, Any]], scores: list[list[float]], group: int) -> None:
    """A transaction of ``GROUP`` scored jobs, job j scored ``scores[(group * GROUP + j) % len(scores)]``."""
    at = datetime.now(UTC)
    with db.write() as session:
        jobs = [
            jobs_repo.ScoredJob(
                job_id=str(uuid.uuid4()),
                owner="bench",
                reports=payload,
                scores=scores[(group * GROUP + j) % len(scores)],
                model_name="m",
                model_version="1",
                predict_ms=0.1,
                created_at=at,
            )
            for j in range(GROUP)
        ]
        jobs_repo.insert_scored_jobs(session, jobs=jobs, finished_at=at)
