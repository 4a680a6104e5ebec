"""Jobs and their reports: insert, look up, claim for scoring, and write results (first committed result wins)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import Connection, Table, and_, bindparam, case, func, insert, or_, select, text, tuple_, update
from sqlalchemy.orm import Session

from reportscore.storage.models import Job, JobStatus, Report
from reportscore.storage.models.base import UTCDateTime
from reportscore.storage.models.jobs import TERMINAL_STATUSES

REPORT_COLUMNS = (
    "abuse_type",
    "report_text_len",
    "profile_rating",
    "popularity",
    "lifetime_matches_created",
)


_JOBS = cast(Table, Job.__table__)
_REPORTS = cast(Table, Report.__table__)
# Statements built once (their compiled form is cached) and run on the session's connection: the group committer
# runs them for every submit, so ORM-level execution and per-call statement building were a visible cost.
_INSERT_JOB = insert(_JOBS)


def insert_job(
    session: Session,
    *,
    job_id: str,
    owner: str,
    reports: Sequence[Mapping[str, Any]],
    created_at: datetime,
    idempotency_key: str | None,
    request_sha256: str | None,
    idempotency_expires_at: datetime | None,
    callback_url: str | None = None,
) -> list[int]:
    """Insert a PENDING job and all its report rows (one bulk insert); returns the reports' ids in order."""
    cursor = sqlite_cursor(session)
    if cursor is not None:
        cursor.execute(
            _SQLITE_INSERT_JOB,
            (
                job_id,
                JobStatus.PENDING.value,
                owner,
                len(reports),
                sqlite_timestamp(created_at),
                0,
                idempotency_key,
                request_sha256,
                sqlite_timestamp(idempotency_expires_at),
                sqlite_timestamp(created_at),
                callback_url,
            ),
        )
        return _sqlite_insert_reports(cursor, job_id, owner, reports, scores=None)
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
    return _pg_insert_reports(conn, [NewJob(job_id=job_id, owner=owner, reports=reports)])[job_id]


@dataclass(frozen=True)
class NewJob:
    """A job to insert PENDING with its reports (``insert_jobs``)."""

    job_id: str
    owner: str
    reports: Sequence[Mapping[str, Any]]
    callback_url: str | None = None


_PG_INSERT_JOBS = text(
    "INSERT INTO jobs (id, status, owner, n_reports, created_at, attempts, enqueued_at, callback_url) "
    "SELECT v.id, 'PENDING', v.owner, v.n_reports, :b_at, 0, :b_at, v.callback_url "
    "FROM unnest(CAST(:b_ids AS varchar[]), CAST(:b_owners AS varchar[]), CAST(:b_n_reports AS integer[]), "
    "CAST(:b_callback_urls AS varchar[])) AS v(id, owner, n_reports, callback_url)"
).bindparams(bindparam("b_at", type_=UTCDateTime()))
# The reports go as one JSON document (orjson, then PostgreSQL's json parser: both in C) rather than one array
# parameter per column, which psycopg renders element by element in Python (a quarter of a loaded API's time at
# 100 reports per job).
_PG_INSERT_MANY_REPORTS = text(
    "INSERT INTO reports (job_id, owner, position, client_report_id, abuse_type, report_text_len, profile_rating, "
    "popularity, lifetime_matches_created) "
    "SELECT v.* FROM json_to_recordset(CAST(:b_rows AS json)) AS v(job_id varchar, owner varchar, position integer, "
    "client_report_id varchar, abuse_type varchar, report_text_len integer, profile_rating float8, "
    "popularity smallint, lifetime_matches_created integer) "
    "RETURNING id, job_id, position"
)


def insert_jobs(session: Session, *, jobs: Sequence[NewJob], created_at: datetime) -> dict[str, list[int]]:
    """PostgreSQL: insert several PENDING jobs (no idempotency key) and all their reports in two statements, one
    for the jobs and one for every report; returns each job's report ids in order. (``insert_job`` inserts one,
    on either database.)"""
    conn = session.connection()
    conn.execute(
        _PG_INSERT_JOBS,
        {
            "b_ids": [job.job_id for job in jobs],
            "b_owners": [job.owner for job in jobs],
            "b_n_reports": [len(job.reports) for job in jobs],
            "b_callback_urls": [job.callback_url for job in jobs],
            "b_at": created_at,
        },
    )
    return _pg_insert_reports(conn, jobs)


def _pg_insert_reports(conn: Connection, jobs: Sequence[NewJob]) -> dict[str, list[int]]:
    """Every report of these jobs in one statement; each job's report ids in report order."""
    rows = [
        {"job_id": job.job_id, "owner": job.owner, "position": i, "client_report_id": rep.get("report_id")}
        | {name: rep[name] for name in REPORT_COLUMNS}
        for job in jobs
        for i, rep in enumerate(job.reports)
    ]
    inserted = conn.execute(_PG_INSERT_MANY_REPORTS, {"b_rows": orjson.dumps(rows).decode()})
    # RETURNING has no guaranteed order: each id comes with its job and position, which put them in report order.
    ids: dict[str, list[int]] = {job.job_id: [0] * len(job.reports) for job in jobs}
    for report_id, job_id, position in inserted:
        ids[job_id][position] = report_id
    return ids


def insert_scored_job(
    session: Session,
    *,
    job_id: str,
    owner: str,
    reports: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    model_name: str,
    model_version: str,
    predict_ms: float,
    created_at: datetime,
    finished_at: datetime,
) -> None:
    """Insert a job that was scored in the request (``POST /score``): SUCCESS, with its reports' scores."""
    cursor = sqlite_cursor(session)
    if cursor is not None:
        cursor.execute(
            _SQLITE_INSERT_SCORED_JOB,
            (
                job_id,
                JobStatus.SUCCESS.value,
                owner,
                len(reports),
                sqlite_timestamp(created_at),
                sqlite_timestamp(created_at),
                sqlite_timestamp(finished_at),
                1,
                model_name,
                model_version,
                predict_ms,
            ),
        )
        _sqlite_insert_reports(
            cursor, job_id, owner, reports, scores=scores, model_version=model_version, scored_at=finished_at
        )
        return
    conn = session.connection()
    conn.execute(
        _INSERT_JOB,
        {
            "id": job_id,
            "status": JobStatus.SUCCESS,
            "owner": owner,
            "n_reports": len(reports),
            "created_at": created_at,
            "started_at": created_at,
            "finished_at": finished_at,
            "attempts": 1,
            "model_name": model_name,
            "model_version": model_version,
            "predict_ms": predict_ms,
        },
    )
    conn.execute(
        _PG_INSERT_SCORED_REPORTS,
        {
            **_pg_report_arrays(job_id, owner, reports),
            "b_scores": [float(x) for x in scores],
            "b_model_version": model_version,
            "b_at": finished_at,
        },
    )


# SQLite: the hottest writes go straight to the driver (one writer thread runs them for every submit; SQLAlchemy's
# per-statement machinery was most of its time). Values are plain str/int/float from the validated request and
# timestamps in the text form SQLAlchemy's DateTime stores and reads back (naive UTC, microseconds).
_SQLITE_INSERT_JOB = (
    "INSERT INTO jobs (id, status, owner, n_reports, created_at, attempts, idempotency_key, request_sha256, "
    "idempotency_expires_at, enqueued_at, callback_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_INSERT_SCORED_JOB = (
    "INSERT INTO jobs (id, status, owner, n_reports, created_at, started_at, finished_at, attempts, model_name, "
    "model_version, predict_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_INSERT = (
    "INSERT INTO reports (job_id, owner, position, client_report_id, {columns}{scored}) "
    "VALUES (?, ?, ?, ?, {marks}{scored_marks})"
)
_SQLITE_INSERT_REPORTS = _SQLITE_INSERT.format(
    columns=", ".join(REPORT_COLUMNS), marks=", ".join("?" * len(REPORT_COLUMNS)), scored="", scored_marks=""
)
_SQLITE_INSERT_SCORED_REPORTS = _SQLITE_INSERT.format(
    columns=", ".join(REPORT_COLUMNS),
    marks=", ".join("?" * len(REPORT_COLUMNS)),
    scored=", score, model_version, scored_at",
    scored_marks=", ?, ?, ?",
)


def sqlite_timestamp(value: datetime | None) -> str | None:
    """An aware datetime as SQLAlchemy's SQLite ``DateTime`` stores it (``UTCDateTime`` reads it back as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _driver_cursor(conn: Connection) -> Any:
    """A cursor of the DB-API connection under ``conn``, inside its transaction."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


_CURSOR_KEY = "reportscore.sqlite_cursor"


def sqlite_cursor(session: Session) -> Any | None:
    """On SQLite, a DB-API cursor inside the session's transaction, made once per session (the group committer runs
    hundreds of units of work in one, and ``session.connection()`` per statement was a visible cost); None on
    PostgreSQL."""
    cursor = session.info.get(_CURSOR_KEY)
    if cursor is None:
        if session.get_bind().dialect.name != "sqlite":
            return None
        cursor = session.info[_CURSOR_KEY] = _driver_cursor(session.connection())
    elif session.in_nested_transaction():
        session.connection()  # SQLAlchemy emits a SAVEPOINT lazily, when the connection is first asked for
    return cursor


def _sqlite_insert_reports(
    cursor: Any,
    job_id: str,
    owner: str,
    reports: Sequence[Mapping[str, Any]],
    *,
    scores: Sequence[float] | None,
    model_version: str | None = None,
    scored_at: datetime | None = None,
) -> list[int]:
    """The report rows in one executemany; returns their ids in order. ``id`` is SQLite's rowid, and the one writer
    of the file inserts them consecutively, so the ids are the last one and the ``n - 1`` before it."""
    a, t, r, p, m = REPORT_COLUMNS
    rows = [
        (job_id, owner, i, rep.get("report_id"), rep[a], rep[t], rep[r], rep[p], rep[m])
        for i, rep in enumerate(reports)
    ]
    if scores is None:
        cursor.executemany(_SQLITE_INSERT_REPORTS, rows)
    else:
        at = sqlite_timestamp(scored_at)
        cursor.executemany(
            _SQLITE_INSERT_SCORED_REPORTS,
            [(*row, score, model_version, at) for row, score in zip(rows, scores, strict=True)],
        )
    last = int(cursor.execute("SELECT last_insert_rowid()").fetchone()[0])
    return list(range(last - len(rows) + 1, last + 1))


# PostgreSQL: a job's report rows in one statement from one array per column (no per-row parameter handling, one
# row of parameters however many reports). RETURNING gives each id with its position.
_PG_INSERT_SCORED_REPORTS = text(
    "INSERT INTO reports (job_id, owner, position, client_report_id, abuse_type, report_text_len, profile_rating, "
    "popularity, lifetime_matches_created, score, model_version, scored_at) "
    "SELECT :b_job_id, :b_owner, v.*, :b_model_version, :b_at FROM unnest(CAST(:b_positions AS integer[]), "
    "CAST(:b_client_ids AS varchar[]), CAST(:b_abuse_type AS varchar[]), CAST(:b_report_text_len AS integer[]), "
    "CAST(:b_profile_rating AS float8[]), CAST(:b_popularity AS smallint[]), "
    "CAST(:b_lifetime_matches_created AS integer[]), CAST(:b_scores AS float8[])) AS v"
).bindparams(bindparam("b_at", type_=UTCDateTime()))


def _pg_report_arrays(job_id: str, owner: str, reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    a, t, r, p, m = REPORT_COLUMNS
    return {
        "b_job_id": job_id,
        "b_owner": owner,
        "b_positions": list(range(len(reports))),
        "b_client_ids": [rep.get("report_id") for rep in reports],
        "b_abuse_type": [rep[a] for rep in reports],
        "b_report_text_len": [rep[t] for rep in reports],
        "b_profile_rating": [float(rep[r]) for rep in reports],
        "b_popularity": [rep[p] for rep in reports],
        "b_lifetime_matches_created": [rep[m] for rep in reports],
    }


def find_by_idempotency_key(session: Session, *, owner: str, key: str) -> Job | None:
    return session.scalars(select(Job).where(Job.owner == owner, Job.idempotency_key == key)).one_or_none()


def release_idempotency_key(session: Session, *, job_id: str) -> None:
    """Detach an expired key from its job so the key can name a new one."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(idempotency_key=None, request_sha256=None, idempotency_expires_at=None)
    )


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


@dataclass(frozen=True)
class JobRow:
    """A job's columns as the API shows them."""

    id: str
    status: JobStatus
    owner: str
    n_reports: int
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model_name: str | None
    model_version: str | None
    predict_ms: float | None
    error: str | None
    callback_url: str | None


_JOB_ROW = text(
    "SELECT id, status, owner, n_reports, attempts, created_at, started_at, finished_at, model_name, model_version, "
    "predict_ms, error, callback_url FROM jobs WHERE id = :job_id AND owner = :owner"
).columns(
    Job.id,
    Job.status,
    Job.owner,
    Job.n_reports,
    Job.attempts,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
    Job.model_name,
    Job.model_version,
    Job.predict_ms,
    Job.error,
    Job.callback_url,
)


def get_job_row(conn: Connection | Session, *, job_id: str, owner: str) -> JobRow | None:
    """The job if ``owner`` owns it (another owner's job reads as unknown), in one primary-key lookup."""
    row = conn.execute(_JOB_ROW, {"job_id": job_id, "owner": owner}).first()
    return None if row is None else JobRow(*row)


class ScoredReport(NamedTuple):
    """One report of a finished job as ``GET /task`` shows it (a tuple: a 1,000-report job builds 1,000 of them)."""

    id: int
    client_report_id: str | None
    score: float | None


_JOB_REPORTS = text("SELECT id, client_report_id, score FROM reports WHERE job_id = :job_id ORDER BY position").columns(
    Report.id, Report.client_report_id, Report.score
)


def get_job_reports(session: Connection | Session, job_id: str) -> list[ScoredReport]:
    rows = session.execute(_JOB_REPORTS, {"job_id": job_id}).all()
    return [ScoredReport(id=r[0], client_report_id=r[1], score=r[2]) for r in rows]


def count_unfinished(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Job).where(Job.status.not_in(TERMINAL_STATUSES))) or 0)


def list_unfinished(session: Session) -> list[tuple[str, int, int]]:
    """(job id, number of reports, attempts so far) of every job not yet SUCCESS or FAILURE, oldest first."""
    rows = session.execute(
        select(Job.id, Job.n_reports, Job.attempts).where(Job.status.not_in(TERMINAL_STATUSES)).order_by(Job.created_at)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


_CLAIMABLE = (
    _JOBS.c.id.in_(bindparam("b_ids", expanding=True)),
    or_(
        _JOBS.c.status == JobStatus.PENDING,
        and_(
            _JOBS.c.status == JobStatus.STARTED,
            or_(_JOBS.c.leased_until.is_(None), _JOBS.c.leased_until < bindparam("b_now")),
        ),
    ),
)
_CLAIM_EXHAUSTED = (
    update(_JOBS)
    .where(*_CLAIMABLE, _JOBS.c.attempts >= bindparam("b_max_attempts"))
    .values(status=JobStatus.FAILURE, finished_at=bindparam("b_now"), leased_until=None, error=bindparam("b_error"))
    .returning(_JOBS.c.id)
)
_CLAIM = (
    update(_JOBS)
    .where(*_CLAIMABLE, _JOBS.c.attempts < bindparam("b_max_attempts"))
    .values(
        status=JobStatus.STARTED,
        attempts=_JOBS.c.attempts + 1,
        leased_until=bindparam("b_leased_until"),
        started_at=case((_JOBS.c.started_at.is_(None), bindparam("b_now")), else_=_JOBS.c.started_at),
    )
    .returning(_JOBS.c.id)
)


# PostgreSQL, in one round trip: lock the message's own claimable jobs and up to :b_limit other PENDING jobs never
# tried, oldest first, skipping rows another worker has locked. Never waiting for a row lock is what keeps
# concurrent claims free of deadlocks; a row another worker has locked is part of that worker's batch.
_PG_LOCK = text(
    "WITH own AS ("
    " SELECT id, attempts, n_reports, created_at, 0 AS extra FROM jobs"
    " WHERE id = ANY(CAST(:b_ids AS varchar[])) AND (status = 'PENDING' OR (status = 'STARTED'"
    " AND (leased_until IS NULL OR leased_until < :b_now)))"
    " FOR UPDATE SKIP LOCKED"
    "), extra AS ("
    " SELECT id, attempts, n_reports, created_at, 1 AS extra FROM jobs"
    " WHERE status = 'PENDING' AND attempts = 0 AND id <> ALL(CAST(:b_ids AS varchar[]))"
    " ORDER BY created_at LIMIT :b_limit FOR UPDATE SKIP LOCKED"
    ") SELECT id, attempts, n_reports, created_at, extra FROM own UNION ALL"
    " SELECT id, attempts, n_reports, created_at, extra FROM extra"
).bindparams(bindparam("b_now", type_=UTCDateTime()))
_CLAIMED_COLUMNS = (
    _JOBS.c.id,
    _JOBS.c.owner,
    _JOBS.c.n_reports,
    _JOBS.c.attempts,
    _JOBS.c.created_at,
    _JOBS.c.started_at,
    _JOBS.c.callback_url.is_not(None),
)
"""A claimed job's row as ``claimed_jobs`` reads it (and the PostgreSQL claim returns it)."""
_PG_CLAIM = (
    update(_JOBS)
    .where(_JOBS.c.id.in_(bindparam("b_ids", expanding=True)), _JOBS.c.attempts < bindparam("b_max_attempts"))
    .values(
        status=JobStatus.STARTED,
        attempts=_JOBS.c.attempts + 1,
        leased_until=bindparam("b_leased_until"),
        started_at=case((_JOBS.c.started_at.is_(None), bindparam("b_now")), else_=_JOBS.c.started_at),
    )
    .returning(*_CLAIMED_COLUMNS)
)


class Claim(NamedTuple):
    claimed: list[str]
    exhausted: list[str]
    """Jobs that used up their attempts and were just marked FAILURE."""
    deferred: list[str]
    """Jobs of the message left for the next claim, because one of them is retried and goes alone."""
    info: dict[str, ClaimedJob] | None = None
    """``claimed_jobs`` of the claimed and exhausted jobs, when the claim already read it."""


def claim_jobs(
    session: Session,
    *,
    job_ids: Sequence[str],
    now: datetime,
    lease_s: float,
    max_attempts: int,
    extra_pending: int = 0,
    extra_max_reports: int = 0,
) -> Claim:
    """Mark claimable jobs STARTED with a lease, counting the attempt.

    A job is claimable when it is PENDING, or STARTED with an expired lease (its worker died). Finished jobs and
    jobs leased by a live worker are left alone, so a redelivered or duplicated message writes nothing.
    With ``extra_pending`` (PostgreSQL), also claims up to that many other PENDING jobs, oldest first, skipping
    rows another worker has locked (``FOR UPDATE SKIP LOCKED``), while their reports fit in ``extra_max_reports``:
    one delivered message then feeds a whole micro-batch, and prefetch stays at one. This path takes two
    statements (lock, claim) and returns the claimed jobs' ``info`` with them.
    A job whose earlier attempt never finished may be what killed its worker, so it goes alone: when one of
    ``job_ids`` was tried before, only that one is claimed, and the message's other jobs come back as deferred
    (the caller claims them next), so a poison job cannot use up the attempts of innocent jobs batched with it.
    """
    if extra_pending > 0 and job_ids:
        return _pg_claim(
            session,
            job_ids=job_ids,
            now=now,
            lease_s=lease_s,
            max_attempts=max_attempts,
            extra_pending=extra_pending,
            extra_max_reports=extra_max_reports,
        )
    conn = session.connection()
    params = {"b_ids": list(job_ids), "b_now": now, "b_max_attempts": max_attempts}
    exhausted = list(conn.execute(_CLAIM_EXHAUSTED, {**params, "b_error": _exhausted_error(max_attempts)}).scalars())
    claimed = list(conn.execute(_CLAIM, {**params, "b_leased_until": now + timedelta(seconds=lease_s)}).scalars())
    return Claim(claimed, exhausted, [])


def _exhausted_error(max_attempts: int) -> str:
    return (
        f"gave up after {max_attempts} attempts: the job never finished scoring "
        "(the process scoring it died or timed out each time)"
    )


def _pg_claim(
    session: Session,
    *,
    job_ids: Sequence[str],
    now: datetime,
    lease_s: float,
    max_attempts: int,
    extra_pending: int,
    extra_max_reports: int,
) -> Claim:
    conn = session.connection()
    locked = conn.execute(_PG_LOCK, {"b_ids": list(job_ids), "b_now": now, "b_limit": extra_pending}).all()
    own = sorted((r for r in locked if not r[4]), key=lambda r: r[3])
    extras = sorted((r for r in locked if r[4]), key=lambda r: r[3])
    deferred: list[str] = []
    retried = [r for r in own if r[1] > 0]
    if retried:
        ids = [retried[0][0]]
        deferred = [r[0] for r in own if r[0] != ids[0]]
    else:
        ids = [r[0] for r in own]
        budget = extra_max_reports
        for job_id, _, n_reports, _, _ in extras:
            if n_reports > budget:
                break
            ids.append(job_id)
            budget -= n_reports
    if not ids:
        return Claim([], [], deferred, {})
    params = {"b_ids": ids, "b_now": now, "b_max_attempts": max_attempts}
    exhausted: list[str] = []
    if retried and retried[0][1] >= max_attempts:  # only a retried job can have used up its attempts
        exhausted = list(
            conn.execute(_CLAIM_EXHAUSTED, {**params, "b_error": _exhausted_error(max_attempts)}).scalars()
        )
    rows = conn.execute(_PG_CLAIM, {**params, "b_leased_until": now + timedelta(seconds=lease_s)}).all()
    info = {
        r[0]: ClaimedJob(
            owner=r[1], n_reports=r[2], attempts=r[3], created_at=r[4], started_at=r[5], has_callback=bool(r[6])
        )
        for r in rows
    }
    if exhausted:
        info.update(claimed_jobs(session, exhausted))
    return Claim([r[0] for r in rows], exhausted, deferred, info)


def release_started(session: Session) -> int:
    """Embedded mode at start-up: jobs left STARTED by a dead process go back to PENDING (attempts are kept)."""
    result = session.execute(
        update(Job)
        .where(Job.status == JobStatus.STARTED)
        .values(status=JobStatus.PENDING, leased_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


_RENEW = (
    update(_JOBS)
    .where(
        tuple_(_JOBS.c.id, _JOBS.c.attempts).in_(bindparam("b_held", expanding=True)),
        _JOBS.c.status == JobStatus.STARTED,
    )
    .values(leased_until=bindparam("b_leased_until"))
    .returning(_JOBS.c.id)
)


def renew_leases(session: Session, *, held: Mapping[str, int], now: datetime, lease_s: float) -> list[str]:
    """Extend the lease of each job still STARTED by the attempt that holds it (job id -> attempt number), in one
    UPDATE; returns the ids renewed. A job missing from the answer was finished, or reclaimed by a later attempt
    after this one's lease ran out: this attempt no longer holds it, and its result will not be written."""
    if not held:
        return []
    rows = session.connection().execute(
        _RENEW, {"b_held": list(held.items()), "b_leased_until": now + timedelta(seconds=lease_s)}
    )
    return list(rows.scalars())


def find_stranded(session: Session, *, now: datetime, pending_age_s: float, limit: int) -> list[str]:
    """Jobs whose message may be lost: PENDING and not handed to the queue for a while, or STARTED with an expired
    lease (its worker stopped renewing it). Oldest first.

    An expired lease is reported at once (not after ``pending_age_s``: its message was consumed by the worker that
    died), then again only every ``pending_age_s`` while no worker has claimed it.
    """
    not_recently_enqueued = or_(Job.enqueued_at.is_(None), Job.enqueued_at < now - timedelta(seconds=pending_age_s))
    rows = session.scalars(
        select(Job.id)
        .where(
            or_(
                and_(Job.status == JobStatus.PENDING, not_recently_enqueued),
                and_(
                    Job.status == JobStatus.STARTED,
                    Job.leased_until < now,
                    or_(not_recently_enqueued, Job.enqueued_at < Job.leased_until),
                ),
            ),
        )
        .order_by(Job.created_at)
        .limit(limit)
    )
    return list(rows)


def mark_enqueued(session: Session, *, job_ids: Sequence[str], at: datetime | None) -> None:
    """Record when the jobs were handed to the queue (None: not handed over, due for the next reconciler pass)."""
    session.execute(
        update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=at).execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class FeatureRows:
    """Reports of several jobs, columnar, ordered by (job, position)."""

    job_ids: list[str]
    report_ids: list[int]
    columns: dict[str, list[Any]]
    client_report_ids: list[str | None] = field(default_factory=list)


def feature_rows(job_id: str, report_ids: Sequence[int], reports: Sequence[Mapping[str, Any]]) -> FeatureRows:
    """One job's reports as they were submitted, in the shape ``load_features`` reads them back."""
    return FeatureRows(
        job_ids=[job_id] * len(reports),
        report_ids=list(report_ids),
        columns={name: [r[name] for r in reports] for name in REPORT_COLUMNS},
        client_report_ids=[r.get("report_id") for r in reports],
    )


_PG_NO_SEQSCAN = text("SET LOCAL enable_seqscan = off")
_PG_SEQSCAN_DEFAULT = text("SET LOCAL enable_seqscan = DEFAULT")


@contextmanager
def index_paths_only(conn: Connection) -> Iterator[None]:
    """PostgreSQL: no sequential scans for the statements in the block (the rest of the transaction unchanged).

    For the statements that find a claimed batch's reports by ``job_id`` (a worker's read and its score UPDATE):
    the planner estimates their rows from statistics of the average job size, which (100-report jobs dominating,
    the table grown since the last ANALYZE) came out hundreds of times too large, and past a few hundred thousand
    reports it chose a scan of the whole table — over a second per claim on millions of reports, which stalled the
    queue. The (job_id, position) index answers them in milliseconds whatever the table's size.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.execute(_PG_NO_SEQSCAN)
    yield  # an error aborts the transaction, and its rollback undoes the SET LOCAL
    conn.execute(_PG_SEQSCAN_DEFAULT)


_LOAD_FEATURES = select(
    Report.job_id,
    Report.id,
    Report.client_report_id,
    Report.abuse_type,
    Report.report_text_len,
    Report.profile_rating,
    Report.popularity,
    Report.lifetime_matches_created,
).order_by(Report.job_id, Report.position)


def load_features(session: Session, job_ids: Sequence[str]) -> FeatureRows:
    """The jobs' reports, grouped by job (jobs in id order), each job's in submission order."""
    with index_paths_only(session.connection()):
        rows = session.execute(_LOAD_FEATURES.where(Report.job_id.in_(job_ids))).all()
    if not rows:
        return FeatureRows(job_ids=[], report_ids=[], columns={c: [] for c in REPORT_COLUMNS})
    cols = list(zip(*rows, strict=True))
    return FeatureRows(
        job_ids=list(cols[0]),
        report_ids=list(cols[1]),
        client_report_ids=list(cols[2]),
        columns={name: list(values) for name, values in zip(REPORT_COLUMNS, cols[3:], strict=True)},
    )


@dataclass(frozen=True)
class ClaimedJob:
    """What a claimed job's result view needs besides its scores."""

    owner: str
    n_reports: int
    attempts: int
    created_at: datetime
    started_at: datetime | None
    has_callback: bool


_CLAIMED_JOBS = select(*_CLAIMED_COLUMNS).where(_JOBS.c.id.in_(bindparam("b_ids", expanding=True)))


def claimed_jobs(session: Session, job_ids: Sequence[str]) -> dict[str, ClaimedJob]:
    """Owner, size, attempts and timestamps of these jobs (read in the claim's transaction)."""
    if not job_ids:
        return {}
    rows = session.connection().execute(_CLAIMED_JOBS, {"b_ids": list(job_ids)}).all()
    return {
        r[0]: ClaimedJob(
            owner=r[1], n_reports=r[2], attempts=r[3], created_at=r[4], started_at=r[5], has_callback=bool(r[6])
        )
        for r in rows
    }


@dataclass(frozen=True)
class JobResult:
    job_id: str
    report_ids: Sequence[int]
    scores: Sequence[float]
    model_name: str
    model_version: str
    predict_ms: float
    attempt: int
    """The claim's attempt number (``jobs.attempts`` as the claim set it): the write's fencing token."""


# Fenced by the attempt: a job reclaimed by a later attempt (this one's lease ran out) is not this result's to write.
_SAVE_SUCCESS = (
    update(_JOBS)
    .where(
        tuple_(_JOBS.c.id, _JOBS.c.attempts).in_(bindparam("b_claims", expanding=True)),
        _JOBS.c.status.not_in(TERMINAL_STATUSES),
    )
    .values(
        status=JobStatus.SUCCESS,
        finished_at=bindparam("b_finished_at"),
        model_name=bindparam("b_model_name"),
        model_version=bindparam("b_model_version"),
        predict_ms=bindparam("b_predict_ms"),
        error=None,
        leased_until=None,
    )
    .returning(_JOBS.c.id)
)
# PostgreSQL: every report's score, model version and time in one statement (one new row version per report).
# The job_id condition lets the planner find the rows through the (job_id, position) index: joined on id alone
# it merge-joined the whole primary key, a cost that grew with the table.
_PG_SAVE_SCORES = text(
    "UPDATE reports SET score = v.score, model_version = v.model_version, scored_at = :b_at "
    "FROM unnest(CAST(:b_ids AS bigint[]), CAST(:b_scores AS float8[]), CAST(:b_versions AS varchar[])) "
    "AS v(id, score, model_version) WHERE reports.job_id = ANY(CAST(:b_job_ids AS varchar[])) AND reports.id = v.id"
).bindparams(bindparam("b_at", type_=UTCDateTime()))


def save_results(session: Session, *, results: Iterable[JobResult], finished_at: datetime) -> list[str]:
    """Write SUCCESS and scores for each job still unfinished; returns the ids written.

    The job row's status guard makes the first committed result win: a job finished meanwhile (by a redelivery
    or another worker) is skipped and its reports are not touched. The write is also fenced by the claim's attempt
    number: a worker whose lease ran out and whose job was claimed again (by a later attempt) writes nothing, even
    when it finishes first, so only the attempt holding the job can write its result.
    One UPDATE per model call (usually one per batch) marks the jobs; each report's score, model version and time
    go in one executemany (SQLite) or one ``UPDATE ... FROM unnest`` (PostgreSQL).
    """
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    by_call: dict[tuple[str, str, float], list[JobResult]] = {}
    for res in results:
        by_call.setdefault((res.model_name, res.model_version, res.predict_ms), []).append(res)
    written: list[str] = []
    scores: list[tuple[float, int]] = []
    versions: list[str] = []  # PostgreSQL: score, version and time in one UPDATE ... FROM unnest
    scored_rows: list[tuple[float, str, str | None, int]] = []  # SQLite: score, version and time in one UPDATE
    scored_at = sqlite_timestamp(finished_at) if sqlite else None
    for (model_name, model_version, predict_ms), group in by_call.items():
        done = set(
            conn.execute(
                _SAVE_SUCCESS,
                {
                    "b_claims": [(r.job_id, r.attempt) for r in group],
                    "b_finished_at": finished_at,
                    "b_model_name": model_name,
                    "b_model_version": model_version,
                    "b_predict_ms": predict_ms,
                },
            ).scalars()
        )
        for res in group:
            if res.job_id in done:
                written.append(res.job_id)
                if sqlite:
                    scored_rows.extend(
                        (score, model_version, scored_at, rid)
                        for score, rid in zip(res.scores, res.report_ids, strict=True)
                    )
                else:
                    scores.extend(zip(res.scores, res.report_ids, strict=True))
                    versions.extend([model_version] * len(res.report_ids))
    if scored_rows:  # each report row written once, straight to the driver (see _sqlite_insert_reports)
        _driver_cursor(conn).executemany(
            "UPDATE reports SET score = ?, model_version = ?, scored_at = ? WHERE id = ?", scored_rows
        )
    if scores:
        score_values, report_ids = zip(*scores, strict=True)
        with index_paths_only(conn):
            conn.execute(
                _PG_SAVE_SCORES,
                {
                    "b_ids": list(report_ids),
                    "b_scores": list(score_values),
                    "b_versions": versions,
                    "b_job_ids": written,
                    "b_at": finished_at,
                },
            )
    return written


def save_failure(session: Session, *, job_id: str, attempt: int, error: str, finished_at: datetime) -> bool:
    """Mark an unfinished job FAILURE with its reason; False when it had already finished or a later attempt
    holds it (fenced by the attempt number like ``save_results``)."""
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts == attempt, Job.status.not_in(TERMINAL_STATUSES))
        .values(status=JobStatus.FAILURE, finished_at=finished_at, error=error[:2000], leased_until=None)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]
