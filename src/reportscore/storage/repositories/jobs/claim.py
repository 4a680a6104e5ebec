"""Claiming jobs for scoring: the claim with its lease, lease renewal, and finding jobs whose message was lost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, cast

from sqlalchemy import Table, and_, bindparam, case, or_, select, text, tuple_, update
from sqlalchemy.orm import Session

from reportscore.storage.models import Job, JobStatus
from reportscore.storage.models.base import UTCDateTime
from reportscore.storage.repositories.jobs.writer import writer_of

_JOBS = cast(Table, Job.__table__)


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


# In one round trip (PostgreSQL SQL: only a store with ``Database.batch_claims`` is given ``extra_pending``), lock
# the message's own claimable jobs and up to :b_limit other PENDING jobs never tried, oldest first, skipping rows
# another worker has locked. Never waiting for a row lock is what keeps concurrent claims free of deadlocks; a row
# another worker has locked is part of that worker's batch.
_LOCK_WITH_EXTRAS = text(
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
"""A claimed job's row as ``claimed_jobs`` reads it (and the claim with extras returns it)."""
_CLAIM_RETURNING = (
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
    With ``extra_pending`` (a store with ``Database.batch_claims``), also claims up to that many other PENDING
    jobs, oldest first, skipping rows another worker has locked (``FOR UPDATE SKIP LOCKED``), while their reports
    fit in ``extra_max_reports``: one delivered message then feeds a whole micro-batch, and prefetch stays at one.
    This path takes two statements (lock, claim) and returns the claimed jobs' ``info`` with them.
    A job whose earlier attempt never finished may be what killed its worker, so it goes alone: when one of
    ``job_ids`` was tried before, only that one is claimed, and the message's other jobs come back as deferred
    (the caller claims them next), so a poison job cannot use up the attempts of innocent jobs batched with it.
    """
    if extra_pending > 0 and job_ids:
        return _claim_with_extras(
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


def _claim_with_extras(
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
    locked = conn.execute(_LOCK_WITH_EXTRAS, {"b_ids": list(job_ids), "b_now": now, "b_limit": extra_pending}).all()
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
    rows = conn.execute(_CLAIM_RETURNING, {**params, "b_leased_until": now + timedelta(seconds=lease_s)}).all()
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

    Rows another transaction has locked are skipped (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so a worker cut off
    in the middle of a transaction, whose locks the server keeps until it notices the client is gone, never blocks
    the pass (which runs under the reconciler's exclusive lock); its jobs are taken on a later pass.
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
        .with_for_update(skip_locked=True)
    )
    return list(rows)


def mark_enqueued(session: Session, *, job_ids: Sequence[str], at: datetime | None) -> None:
    """Record when the jobs were handed to the queue (None: not handed over, due for the next reconciler pass)."""
    session.execute(
        update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=at).execution_options(synchronize_session=False)
    )


def try_exclusive_pass(session: Session, *, key: int) -> bool:
    """Whether this transaction may run a pass that only one process at a time should run (the reconciler's):
    False when another process holds ``key`` until its transaction ends."""
    return writer_of(session).try_exclusive(session, key=key)
