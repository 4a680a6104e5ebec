"""SQLite's job writes: straight to the driver.

One writer thread runs them for every submit, and SQLAlchemy's per-statement machinery was most of its time. Values
are plain str/int/float from the validated request and timestamps in the text form SQLAlchemy's DateTime stores and
reads back (naive UTC, microseconds).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from reportscore.storage.models import JobStatus
from reportscore.storage.repositories.jobs.fields import (
    DRIFT_UPSERT_SQL,
    INSERT_COLUMNS,
    INSERT_COLUMNS_SQL,
    SCORE_COLUMNS_SQL,
    report_rows,
    sqlite_timestamp,
)
from reportscore.storage.repositories.jobs.writer import DriftRow, NewJob, NewScore, ScoredJob

_INSERT_JOB = (
    "INSERT INTO jobs (id, status, owner, n_reports, created_at, attempts, idempotency_key, request_sha256, "
    "idempotency_expires_at, enqueued_at, callback_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SCORED_JOB = (
    "INSERT INTO jobs (id, status, owner, n_reports, created_at, started_at, finished_at, attempts, model_name, "
    "model_version, predict_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Built only from the constant column declarations in ``fields`` (no value is formatted in).
_INSERT_REPORTS = f"INSERT INTO reports ({INSERT_COLUMNS_SQL}) VALUES ({', '.join('?' * len(INSERT_COLUMNS))})"  # noqa: S608
_INSERT_SCORES = f"INSERT INTO report_scores ({SCORE_COLUMNS_SQL}) VALUES (?, ?, ?, ?, ?)"  # noqa: S608
_UPSERT_DRIFT = DRIFT_UPSERT_SQL.format(values="?, ?, ?, ?, ?")

_CURSOR_KEY = "reportscore.sqlite_cursor"


def _cursor(session: Session) -> Any:
    """A DB-API cursor inside the session's transaction, made once per session (the group committer runs hundreds
    of units of work in one, and ``session.connection()`` per statement was a visible cost)."""
    cursor = session.info.get(_CURSOR_KEY)
    if cursor is None:
        conn = session.connection()
        cursor = session.info[_CURSOR_KEY] = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    elif session.in_nested_transaction():
        session.connection()  # SQLAlchemy emits a SAVEPOINT lazily, when the connection is first asked for
    return cursor


def _insert_reports(cursor: Any, rows: Sequence[tuple[Any, ...]]) -> range:
    """Report rows (``INSERT_COLUMNS``) in one executemany; returns their ids in order. ``id`` is SQLite's rowid,
    and the one writer of the file inserts them consecutively, so the ids are the last one and the ``n - 1``
    before it."""
    cursor.executemany(_INSERT_REPORTS, rows)
    last = int(cursor.execute("SELECT last_insert_rowid()").fetchone()[0])
    return range(last - len(rows) + 1, last + 1)


def _pending_row(
    job_id: str,
    owner: str,
    n_reports: int,
    at: str | None,
    idempotency_key: str | None,
    request_sha256: str | None,
    idempotency_expires_at: str | None,
    callback_url: str | None,
) -> tuple[Any, ...]:
    """The values of ``_INSERT_JOB`` for a PENDING job created (and enqueued) ``at``."""
    return (
        job_id, JobStatus.PENDING.value, owner, n_reports, at, 0, idempotency_key, request_sha256,
        idempotency_expires_at, at, callback_url,
    )  # fmt: skip


class SqliteJobWriter:
    """The embedded store: one process, one writer."""

    def insert_job(
        self,
        session: Session,
        *,
        job_id: str,
        owner: str,
        reports: Sequence[Mapping[str, Any]],
        created_at: datetime,
        idempotency_key: str | None,
        request_sha256: str | None,
        idempotency_expires_at: datetime | None,
        callback_url: str | None,
    ) -> list[int]:
        cursor = _cursor(session)
        at = sqlite_timestamp(created_at)
        cursor.execute(
            _INSERT_JOB,
            _pending_row(
                job_id, owner, len(reports), at, idempotency_key, request_sha256,
                sqlite_timestamp(idempotency_expires_at), callback_url,
            ),
        )  # fmt: skip
        return list(_insert_reports(cursor, report_rows(job_id, owner, reports)))

    def insert_jobs(self, session: Session, *, jobs: Sequence[NewJob], created_at: datetime) -> dict[str, list[int]]:
        """Every job in one executemany, then every report in another."""
        cursor = _cursor(session)
        at = sqlite_timestamp(created_at)
        cursor.executemany(
            _INSERT_JOB,
            [
                _pending_row(job.job_id, job.owner, len(job.reports), at, None, None, None, job.callback_url)
                for job in jobs
            ],
        )
        report_ids = iter(
            _insert_reports(cursor, [row for job in jobs for row in report_rows(job.job_id, job.owner, job.reports)])
        )
        return {job.job_id: [next(report_ids) for _ in job.reports] for job in jobs}

    def insert_scored_jobs(self, session: Session, *, jobs: Sequence[ScoredJob], finished_at: datetime) -> None:
        """Every job, then every report, then every score, each in one executemany, however many jobs."""
        cursor = _cursor(session)
        finished = sqlite_timestamp(finished_at)
        job_rows = []
        rows: list[tuple[Any, ...]] = []
        for job in jobs:
            created = sqlite_timestamp(job.created_at)
            job_rows.append(
                (
                    job.job_id,
                    JobStatus.SUCCESS.value,
                    job.owner,
                    len(job.reports),
                    created,
                    created,
                    finished,
                    1,
                    job.model_name,
                    job.model_version,
                    job.predict_ms,
                )
            )
            rows.extend(report_rows(job.job_id, job.owner, job.reports))
        cursor.executemany(_INSERT_SCORED_JOB, job_rows)
        report_ids = iter(_insert_reports(cursor, rows))
        cursor.executemany(
            _INSERT_SCORES,
            [
                (next(report_ids), job.owner, float(score), job.model_version, finished)
                for job in jobs
                for score in job.scores
            ],
        )

    def insert_scores(self, session: Session, *, scores: Sequence[NewScore], scored_at: datetime) -> None:
        at = sqlite_timestamp(scored_at)
        _cursor(session).executemany(
            _INSERT_SCORES, [(s.report_id, s.owner, s.score, s.model_version, at) for s in scores]
        )

    def add_drift_counts(self, session: Session, rows: Sequence[DriftRow]) -> None:
        windows = {w: sqlite_timestamp(w) for w in {row[1] for row in rows}}  # a few windows for many bins
        _cursor(session).executemany(_UPSERT_DRIFT, [(v, windows[w], f, b, n) for v, w, f, b, n in rows])

    @contextmanager
    def index_paths_only(self, conn: Connection) -> Iterator[None]:
        """Nothing to do: SQLite's planner already finds a job's reports through the (job_id, position) index."""
        yield

    def try_exclusive(self, session: Session, *, key: int) -> bool:
        """Always True: the write transaction (``BEGIN IMMEDIATE``) already excludes every other writer."""
        return True
