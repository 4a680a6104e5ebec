"""Jobs and their reports: insert, look up, claim for scoring, and write results (first committed result wins)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update
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
) -> None:
    """Insert a PENDING job and all its report rows (one bulk insert)."""
    session.execute(
        insert(Job).values(
            id=job_id,
            status=JobStatus.PENDING,
            owner=owner,
            n_reports=len(reports),
            created_at=created_at,
            attempts=0,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
            idempotency_expires_at=idempotency_expires_at,
            enqueued_at=created_at,
            callback_url=callback_url,
        )
    )
    session.execute(insert(Report), _report_rows(job_id, owner, reports))


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
    session.execute(
        insert(Job).values(
            id=job_id,
            status=JobStatus.SUCCESS,
            owner=owner,
            n_reports=len(reports),
            created_at=created_at,
            started_at=created_at,
            finished_at=finished_at,
            attempts=1,
            model_name=model_name,
            model_version=model_version,
            predict_ms=predict_ms,
        )
    )
    rows = _report_rows(job_id, owner, reports)
    for row, score in zip(rows, scores, strict=True):
        row.update(score=score, model_version=model_version, scored_at=finished_at)
    session.execute(insert(Report), rows)


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
class ScoredReport:
    id: int
    client_report_id: str | None
    score: float | None


def get_job_reports(session: Session, job_id: str) -> list[ScoredReport]:
    rows = session.execute(
        select(Report.id, Report.client_report_id, Report.score)
        .where(Report.job_id == job_id)
        .order_by(Report.position)
    ).all()
    return [ScoredReport(id=r[0], client_report_id=r[1], score=r[2]) for r in rows]


def count_unfinished(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Job).where(Job.status.not_in(TERMINAL_STATUSES))) or 0)


def list_unfinished(session: Session) -> list[tuple[str, int, int]]:
    """(job id, number of reports, attempts so far) of every job not yet SUCCESS or FAILURE, oldest first."""
    rows = session.execute(
        select(Job.id, Job.n_reports, Job.attempts).where(Job.status.not_in(TERMINAL_STATUSES)).order_by(Job.created_at)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


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
        locked = session.execute(
            select(Job.id, Job.attempts).where(Job.id.in_(ids)).with_for_update(skip_locked=True)
        ).all()
        ids = [job_id for job_id, _ in locked]
        if any(attempts > 0 for _, attempts in locked):
            # A job whose earlier attempt never finished may be what killed its worker: it goes alone, so a
            # poison job cannot use up the attempts of innocent jobs batched with it.
            extra_pending = 0
        budget = extra_max_reports
        candidates = session.execute(
            select(Job.id, Job.n_reports)
            .where(Job.status == JobStatus.PENDING, Job.attempts == 0, Job.id.not_in(ids))
            .order_by(Job.created_at)
            .limit(extra_pending)
            .with_for_update(skip_locked=True)
        ).all()
        for job_id, n_reports in candidates:
            if n_reports > budget:
                break
            ids.append(job_id)
            budget -= n_reports
    claimable = (
        Job.id.in_(ids),
        or_(
            Job.status == JobStatus.PENDING,
            and_(Job.status == JobStatus.STARTED, or_(Job.leased_until.is_(None), Job.leased_until < now)),
        ),
    )
    exhausted = list(
        session.scalars(
            update(Job)
            .where(*claimable, Job.attempts >= max_attempts)
            .values(
                status=JobStatus.FAILURE,
                finished_at=now,
                leased_until=None,
                error=f"gave up after {max_attempts} attempts: the job never finished scoring "
                "(the process scoring it died or timed out each time)",
            )
            .returning(Job.id)
        )
    )
    claimed = list(
        session.scalars(
            update(Job)
            .where(*claimable, Job.attempts < max_attempts)
            .values(
                status=JobStatus.STARTED,
                attempts=Job.attempts + 1,
                leased_until=now + timedelta(seconds=lease_s),
                started_at=case((Job.started_at.is_(None), now), else_=Job.started_at),
            )
            .returning(Job.id)
        )
    )
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


def load_features(session: Session, job_ids: Sequence[str]) -> FeatureRows:
    rows = session.execute(
        select(
            Report.job_id,
            Report.id,
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
        columns={name: list(values) for name, values in zip(REPORT_COLUMNS, cols[2:], strict=True)},
    )


@dataclass(frozen=True)
class JobResult:
    job_id: str
    report_ids: Sequence[int]
    scores: Sequence[float]
    model_name: str
    model_version: str
    predict_ms: float


def save_results(session: Session, *, results: Iterable[JobResult], finished_at: datetime) -> list[str]:
    """Write SUCCESS and scores for each job still unfinished; returns the ids written.

    The job row's status guard makes the first committed result win: a job finished meanwhile (by a redelivery
    or another worker) is skipped and its reports are not touched.
    """
    written: list[str] = []
    report_updates: list[dict[str, Any]] = []
    for res in results:
        done = session.execute(
            update(Job)
            .where(Job.id == res.job_id, Job.status.not_in(TERMINAL_STATUSES))
            .values(
                status=JobStatus.SUCCESS,
                finished_at=finished_at,
                model_name=res.model_name,
                model_version=res.model_version,
                predict_ms=res.predict_ms,
                error=None,
                leased_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            continue
        written.append(res.job_id)
        report_updates.extend(
            {"id": rid, "score": score, "model_version": res.model_version, "scored_at": finished_at}
            for rid, score in zip(res.report_ids, res.scores, strict=True)
        )
    if report_updates:
        session.execute(update(Report), report_updates)
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
