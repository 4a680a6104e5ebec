"""Jobs and their reports: insert, look up, claim for scoring, and write results (first committed result wins)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, and_, bindparam, case, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from reportscore.storage.models import Job, JobStatus, Report
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
_INSERT_REPORTS = insert(_REPORTS).returning(_REPORTS.c.id, sort_by_parameter_order=True)
_INSERT_SCORED_REPORTS = insert(_REPORTS)


_MARK_SCORED = (
    update(_REPORTS)
    .where(_REPORTS.c.job_id.in_(bindparam("b_job_ids", expanding=True)))
    .values(model_version=bindparam("b_model_version"), scored_at=bindparam("b_at"))
)


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
    inserted = conn.execute(_INSERT_REPORTS, _report_rows(job_id, owner, reports))
    return [row[0] for row in inserted]


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
    rows = _report_rows(job_id, owner, reports)
    for row, score in zip(rows, scores, strict=True):
        row["score"] = score
    conn.execute(_INSERT_SCORED_REPORTS, rows)
    # The same for every report: one statement, not a timestamp conversion per row.
    conn.execute(_MARK_SCORED, {"b_job_ids": [job_id], "b_model_version": model_version, "b_at": finished_at})


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


def _report_rows(job_id: str, owner: str, reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "job_id": job_id,
            "owner": owner,
            "position": i,
            "client_report_id": r.get("report_id"),
            **{name: r[name] for name in REPORT_COLUMNS},
        }
        for i, r in enumerate(reports)
    ]


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


_LOCK_OWN = (
    select(_JOBS.c.id, _JOBS.c.attempts)
    .where(_JOBS.c.id.in_(bindparam("b_ids", expanding=True)))
    .with_for_update(skip_locked=True)
)
_LOCK_PENDING = (
    select(_JOBS.c.id, _JOBS.c.n_reports)
    .where(
        _JOBS.c.status == JobStatus.PENDING,
        _JOBS.c.attempts == 0,
        _JOBS.c.id.not_in(bindparam("b_ids", expanding=True)),
    )
    .order_by(_JOBS.c.created_at)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)


def claim_jobs(
    session: Session,
    *,
    job_ids: Sequence[str],
    now: datetime,
    lease_s: float,
    max_attempts: int,
    extra_pending: int = 0,
    extra_max_reports: int = 0,
) -> tuple[list[str], list[str]]:
    """Mark claimable jobs STARTED with a lease, counting the attempt.

    A job is claimable when it is PENDING, or STARTED with an expired lease (its worker died). Finished jobs and
    jobs leased by a live worker are left alone, so a redelivered or duplicated message writes nothing.
    With ``extra_pending`` (PostgreSQL), also claims up to that many other PENDING jobs, oldest first, skipping
    rows another worker has locked (``FOR UPDATE SKIP LOCKED``), while their reports fit in ``extra_max_reports``:
    one delivered message then feeds a whole micro-batch, and prefetch stays at one.
    Returns (claimed ids, ids that exhausted their attempts and were just marked FAILURE).
    """
    ids = list(job_ids)
    if extra_pending > 0 and ids:
        # Lock rows without waiting, the message's own job included: a row another worker has locked is part of
        # that worker's batch. Never waiting for a row lock is what keeps concurrent claims free of deadlocks.
        conn = session.connection()
        locked = conn.execute(_LOCK_OWN, {"b_ids": ids}).all()
        ids = [job_id for job_id, _ in locked]
        if any(attempts > 0 for _, attempts in locked):
            # A job whose earlier attempt never finished may be what killed its worker: it goes alone, so a
            # poison job cannot use up the attempts of innocent jobs batched with it.
            extra_pending = 0
        budget = extra_max_reports
        candidates = conn.execute(_LOCK_PENDING, {"b_ids": ids, "b_limit": extra_pending}).all()
        for job_id, n_reports in candidates:
            if n_reports > budget:
                break
            ids.append(job_id)
            budget -= n_reports
    conn = session.connection()
    params = {"b_ids": ids, "b_now": now, "b_max_attempts": max_attempts}
    exhausted = list(
        conn.execute(
            _CLAIM_EXHAUSTED,
            {
                **params,
                "b_error": f"gave up after {max_attempts} attempts: the job never finished scoring "
                "(the process scoring it died or timed out each time)",
            },
        ).scalars()
    )
    claimed = list(conn.execute(_CLAIM, {**params, "b_leased_until": now + timedelta(seconds=lease_s)}).scalars())
    return claimed, exhausted


def release_started(session: Session) -> int:
    """Embedded mode at start-up: jobs left STARTED by a dead process go back to PENDING (attempts are kept)."""
    result = session.execute(
        update(Job)
        .where(Job.status == JobStatus.STARTED)
        .values(status=JobStatus.PENDING, leased_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def find_stranded(session: Session, *, now: datetime, pending_age_s: float, limit: int) -> list[str]:
    """Jobs whose message may be lost: PENDING and not handed to the queue for a while, or STARTED with an expired
    lease. Oldest first."""
    not_recently_enqueued = or_(Job.enqueued_at.is_(None), Job.enqueued_at < now - timedelta(seconds=pending_age_s))
    rows = session.scalars(
        select(Job.id)
        .where(
            not_recently_enqueued,
            or_(
                Job.status == JobStatus.PENDING,
                and_(Job.status == JobStatus.STARTED, Job.leased_until < now),
            ),
        )
        .order_by(Job.created_at)
        .limit(limit)
    )
    return list(rows)


def mark_enqueued(session: Session, *, job_ids: Sequence[str], at: datetime) -> None:
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


def load_features(session: Session, job_ids: Sequence[str]) -> FeatureRows:
    rows = session.execute(
        select(
            Report.job_id,
            Report.id,
            Report.client_report_id,
            Report.abuse_type,
            Report.report_text_len,
            Report.profile_rating,
            Report.popularity,
            Report.lifetime_matches_created,
        )
        .where(Report.job_id.in_(job_ids))
        .order_by(Report.job_id, Report.position)
    ).all()
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


_CLAIMED_JOBS = select(
    _JOBS.c.id,
    _JOBS.c.owner,
    _JOBS.c.n_reports,
    _JOBS.c.attempts,
    _JOBS.c.created_at,
    _JOBS.c.started_at,
    _JOBS.c.callback_url.is_not(None),
).where(_JOBS.c.id.in_(bindparam("b_ids", expanding=True)))


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


_SAVE_SUCCESS = (
    update(_JOBS)
    .where(_JOBS.c.id.in_(bindparam("b_ids", expanding=True)), _JOBS.c.status.not_in(TERMINAL_STATUSES))
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
_SAVE_SCORES = update(_REPORTS).where(_REPORTS.c.id == bindparam("b_id")).values(score=bindparam("b_score"))


def save_results(session: Session, *, results: Iterable[JobResult], finished_at: datetime) -> list[str]:
    """Write SUCCESS and scores for each job still unfinished; returns the ids written.

    The job row's status guard makes the first committed result win: a job finished meanwhile (by a redelivery
    or another worker) is skipped and its reports are not touched. One UPDATE per model call (usually one per
    batch) marks the jobs, one executemany writes the scores.
    """
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    by_call: dict[tuple[str, str, float], list[JobResult]] = {}
    for res in results:
        by_call.setdefault((res.model_name, res.model_version, res.predict_ms), []).append(res)
    written: list[str] = []
    scores: list[tuple[float, int]] = []
    scored_rows: list[tuple[float, str, str | None, int]] = []  # SQLite: score, version and time in one UPDATE
    scored_at = sqlite_timestamp(finished_at) if sqlite else None
    for (model_name, model_version, predict_ms), group in by_call.items():
        done = set(
            conn.execute(
                _SAVE_SUCCESS,
                {
                    "b_ids": [r.job_id for r in group],
                    "b_finished_at": finished_at,
                    "b_model_name": model_name,
                    "b_model_version": model_version,
                    "b_predict_ms": predict_ms,
                },
            ).scalars()
        )
        group_written = [res.job_id for res in group if res.job_id in done]
        if group_written and not sqlite:
            conn.execute(
                _MARK_SCORED, {"b_job_ids": group_written, "b_model_version": model_version, "b_at": finished_at}
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
    if scored_rows:  # each report row written once, straight to the driver (see _sqlite_insert_reports)
        _driver_cursor(conn).executemany(
            "UPDATE reports SET score = ?, model_version = ?, scored_at = ? WHERE id = ?", scored_rows
        )
    if scores:
        conn.execute(_SAVE_SCORES, [{"b_id": rid, "b_score": score} for score, rid in scores])
    return written


def save_failure(session: Session, *, job_id: str, error: str, finished_at: datetime) -> bool:
    """Mark an unfinished job FAILURE with its reason; False when it had already finished."""
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(TERMINAL_STATUSES))
        .values(status=JobStatus.FAILURE, finished_at=finished_at, error=error[:2000], leased_until=None)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]
