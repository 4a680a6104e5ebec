"""PostgreSQL's job writes: every report of a call in one statement, whatever the number of reports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Table, bindparam, insert, text
from sqlalchemy.orm import Session

from reportscore.storage.models import Job, JobStatus
from reportscore.storage.models.base import UTCDateTime
from reportscore.storage.repositories.jobs.fields import (
    DRIFT_UPSERT_SQL,
    INSERT_COLUMNS,
    INSERT_COLUMNS_SQL,
    PG_RECORD_TYPES_SQL,
    SCORE_COLUMNS_SQL,
    report_rows,
)
from reportscore.storage.repositories.jobs.writer import DriftRow, NewJob, NewScore, ScoredJob

# Built once (their compiled form is cached): the group committer runs them for every submit.
_INSERT_JOB = insert(cast(Table, Job.__table__))
_INSERT_JOBS = text(
    "INSERT INTO jobs (id, status, owner, n_reports, created_at, attempts, enqueued_at, callback_url) "
    "SELECT v.id, 'PENDING', v.owner, v.n_reports, :b_at, 0, :b_at, v.callback_url "
    "FROM unnest(CAST(:b_ids AS varchar[]), CAST(:b_owners AS varchar[]), CAST(:b_n_reports AS integer[]), "
    "CAST(:b_callback_urls AS varchar[])) AS v(id, owner, n_reports, callback_url)"
).bindparams(bindparam("b_at", type_=UTCDateTime()))
# The reports go as one JSON document (orjson, then PostgreSQL's json parser: both in C) rather than one array
# parameter per column, which psycopg renders element by element in Python (a quarter of a loaded API's time at
# 100 reports per job). RETURNING gives each id with its job and position.
# The SQL below is built only from the constant column declarations in ``fields`` (no value is formatted in).
_REPORT_ROWS = f"json_to_recordset(CAST(:b_rows AS json)) AS v({PG_RECORD_TYPES_SQL})"
_INSERT_REPORTS = text(
    f"INSERT INTO reports ({INSERT_COLUMNS_SQL}) SELECT v.* FROM {_REPORT_ROWS} RETURNING id, job_id, position"  # noqa: S608
)
# A job scored in the request: its reports and their scores in one statement (one round trip).
_INSERT_SCORED_REPORTS = text(
    f"WITH r AS (INSERT INTO reports ({INSERT_COLUMNS_SQL}) "  # noqa: S608
    f"SELECT v.* FROM {_REPORT_ROWS} RETURNING id, position) "
    f"INSERT INTO report_scores ({SCORE_COLUMNS_SQL}) "
    "SELECT r.id, :b_owner, s.score, :b_model_version, :b_at FROM r "
    "JOIN unnest(CAST(:b_scores AS float8[])) WITH ORDINALITY AS s(score, n) ON s.n = r.position + 1"
).bindparams(bindparam("b_at", type_=UTCDateTime()))
_INSERT_SCORES = text(
    f"INSERT INTO report_scores ({SCORE_COLUMNS_SQL}) "  # noqa: S608
    "SELECT v.*, :b_at FROM unnest(CAST(:b_ids AS bigint[]), "
    "CAST(:b_owners AS varchar[]), CAST(:b_scores AS float8[]), CAST(:b_versions AS varchar[])) AS v"
).bindparams(bindparam("b_at", type_=UTCDateTime()))
_UPSERT_DRIFT = text(DRIFT_UPSERT_SQL.format(values=":v, :w, :f, :b, :n")).bindparams(
    bindparam("w", type_=UTCDateTime())
)
_NO_SEQSCAN = text("SET LOCAL enable_seqscan = off")
_SEQSCAN_DEFAULT = text("SET LOCAL enable_seqscan = DEFAULT")
_TRY_XACT_LOCK = text("SELECT pg_try_advisory_xact_lock(:k)")


def _rows_json(jobs: Sequence[NewJob]) -> str:
    return orjson.dumps(
        [
            dict(zip(INSERT_COLUMNS, row, strict=True))
            for job in jobs
            for row in report_rows(job.job_id, job.owner, job.reports)
        ]
    ).decode()


def _insert_reports(conn: Connection, jobs: Sequence[NewJob]) -> dict[str, list[int]]:
    """Every report of these jobs in one statement; each job's report ids in report order."""
    inserted = conn.execute(_INSERT_REPORTS, {"b_rows": _rows_json(jobs)})
    # RETURNING has no guaranteed order: each id comes with its job and position, which put them in report order.
    ids: dict[str, list[int]] = {job.job_id: [0] * len(job.reports) for job in jobs}
    for report_id, job_id, position in inserted:
        ids[job_id][position] = report_id
    return ids


class PostgresJobWriter:
    """The shared store of distributed mode: many processes, row locks."""

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
        conn = session.connection()
        conn.execute(
            _INSERT_JOB,
            {
                "id": job_id,
                "status": JobStatus.PENDING,
                "owner": owner,
                "n_reports": len(reports),
                "created_at": created_at,
                "attempts": 0,
                "idempotency_key": idempotency_key,
                "request_sha256": request_sha256,
                "idempotency_expires_at": idempotency_expires_at,
                "enqueued_at": created_at,
                "callback_url": callback_url,
            },
        )
        return _insert_reports(conn, [NewJob(job_id=job_id, owner=owner, reports=reports)])[job_id]

    def insert_jobs(self, session: Session, *, jobs: Sequence[NewJob], created_at: datetime) -> dict[str, list[int]]:
        """Several jobs in two statements, one for the jobs and one for every report."""
        conn = session.connection()
        conn.execute(
            _INSERT_JOBS,
            {
                "b_ids": [job.job_id for job in jobs],
                "b_owners": [job.owner for job in jobs],
                "b_n_reports": [len(job.reports) for job in jobs],
                "b_callback_urls": [job.callback_url for job in jobs],
                "b_at": created_at,
            },
        )
        return _insert_reports(conn, jobs)

    def insert_scored_jobs(self, session: Session, *, jobs: Sequence[ScoredJob], finished_at: datetime) -> None:
        """The jobs in one executemany, then each job's reports and scores in one statement."""
        conn = session.connection()
        conn.execute(
            _INSERT_JOB,
            [
                {
                    "id": job.job_id,
                    "status": JobStatus.SUCCESS,
                    "owner": job.owner,
                    "n_reports": len(job.reports),
                    "created_at": job.created_at,
                    "started_at": job.created_at,
                    "finished_at": finished_at,
                    "attempts": 1,
                    "model_name": job.model_name,
                    "model_version": job.model_version,
                    "predict_ms": job.predict_ms,
                }
                for job in jobs
            ],
        )
        for job in jobs:
            conn.execute(
                _INSERT_SCORED_REPORTS,
                {
                    "b_rows": _rows_json([NewJob(job_id=job.job_id, owner=job.owner, reports=job.reports)]),
                    "b_owner": job.owner,
                    "b_scores": [float(x) for x in job.scores],
                    "b_model_version": job.model_version,
                    "b_at": finished_at,
                },
            )

    def insert_scores(self, session: Session, *, scores: Sequence[NewScore], scored_at: datetime) -> None:
        session.connection().execute(
            _INSERT_SCORES,
            {
                "b_ids": [s.report_id for s in scores],
                "b_owners": [s.owner for s in scores],
                "b_scores": [s.score for s in scores],
                "b_versions": [s.model_version for s in scores],
                "b_at": scored_at,
            },
        )

    def add_drift_counts(self, session: Session, rows: Sequence[DriftRow]) -> None:
        session.execute(_UPSERT_DRIFT, [{"v": v, "w": w, "f": f, "b": b, "n": n} for v, w, f, b, n in rows])

    @contextmanager
    def index_paths_only(self, conn: Connection) -> Iterator[None]:
        """No sequential scans for the statements in the block (the rest of the transaction unchanged).

        For the read of a claimed batch's reports by ``job_id``: the planner estimates its rows from statistics of
        the average job size, which (100-report jobs dominating, the table grown since the last ANALYZE) came out
        hundreds of times too large, and past a few hundred thousand reports it chose a scan of the whole table —
        over a second per claim on millions of reports, which stalled the queue. The (job_id, position) index
        answers it in milliseconds whatever the table's size.
        """
        conn.execute(_NO_SEQSCAN)
        yield  # an error aborts the transaction, and its rollback undoes the SET LOCAL
        conn.execute(_SEQSCAN_DEFAULT)

    def try_exclusive(self, session: Session, *, key: int) -> bool:
        """A transaction-scoped advisory lock, if no other process holds it."""
        return bool(session.execute(_TRY_XACT_LOCK, {"k": key}).scalar())
