"""The callback outbox: enqueue with a job's final status, claim due deliveries with a lease, record outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, literal, or_, select, update
from sqlalchemy.orm import Session

from reportscore.storage.models import CallbackDelivery, CallbackStatus, Job
from reportscore.storage.models.base import UTCDateTime


def enqueue_for_jobs(session: Session, *, job_ids: Sequence[str], now: datetime) -> None:
    """Add a pending delivery for each of these (just finished) jobs that asked for a callback.

    Called in the transaction that writes the jobs' final status, so a result is never committed without its
    delivery, nor the other way round.
    """
    if not job_ids:
        return
    at = literal(now, UTCDateTime())
    session.execute(
        insert(CallbackDelivery).from_select(
            ["job_id", "url", "status", "attempts", "created_at", "next_attempt_at"],
            select(Job.id, Job.callback_url, literal(CallbackStatus.PENDING.value), literal(0), at, at).where(
                Job.id.in_(list(job_ids)), Job.callback_url.is_not(None)
            ),
        )
    )


@dataclass(frozen=True)
class DueDelivery:
    job_id: str
    url: str
    attempts: int
    """Deliveries already made before this one."""


def any_due(session: Session, *, now: datetime) -> bool:
    """Whether some pending delivery is due (a cheap read, so an idle dispatcher never takes the write lock)."""
    found = session.scalar(
        select(CallbackDelivery.job_id)
        .where(
            CallbackDelivery.status == CallbackStatus.PENDING,
            CallbackDelivery.next_attempt_at <= now,
            or_(CallbackDelivery.leased_until.is_(None), CallbackDelivery.leased_until < now),
        )
        .limit(1)
    )
    return found is not None


def claim_due(session: Session, *, now: datetime, lease_s: float, limit: int) -> list[DueDelivery]:
    """Take up to ``limit`` pending deliveries that are due and not leased by a live process, and lease them.

    PostgreSQL: rows another API process is claiming are skipped (``FOR UPDATE SKIP LOCKED``), so no delivery is
    taken twice. SQLite: the write transaction is the single writer (``BEGIN IMMEDIATE``).
    """
    rows = session.execute(
        select(CallbackDelivery.job_id, CallbackDelivery.url, CallbackDelivery.attempts)
        .where(
            CallbackDelivery.status == CallbackStatus.PENDING,
            CallbackDelivery.next_attempt_at <= now,
            or_(CallbackDelivery.leased_until.is_(None), CallbackDelivery.leased_until < now),
        )
        .order_by(CallbackDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return []
    session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.job_id.in_([r[0] for r in rows]))
        .values(leased_until=now + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    return [DueDelivery(job_id=r[0], url=r[1], attempts=r[2]) for r in rows]


def record_attempt(
    session: Session,
    *,
    job_id: str,
    attempts_before: int,
    at: datetime,
    delivered: bool,
    status_code: int | None,
    error: str | None,
    give_up: bool,
    next_attempt_at: datetime,
) -> bool:
    """Count one delivery and its outcome: delivered, failed for good (``give_up``), or due again at
    ``next_attempt_at``. False when the row moved on meanwhile (another process took it after the lease ran out)."""
    status = CallbackStatus.DELIVERED if delivered else (CallbackStatus.FAILED if give_up else CallbackStatus.PENDING)
    done = session.execute(
        update(CallbackDelivery)
        .where(
            CallbackDelivery.job_id == job_id,
            CallbackDelivery.status == CallbackStatus.PENDING,
            CallbackDelivery.attempts == attempts_before,
        )
        .values(
            status=status,
            attempts=attempts_before + 1,
            last_attempt_at=at,
            last_status_code=status_code,
            last_error=None if delivered else (error or "")[:2000],
            leased_until=None,
            next_attempt_at=next_attempt_at,
            finished_at=None if status == CallbackStatus.PENDING else at,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def release_leases(session: Session) -> int:
    """Embedded mode at start-up: deliveries leased by a dead process are free again (their attempt is not
    counted: it may or may not have reached the receiver, which dedupes by task id)."""
    result = session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.status == CallbackStatus.PENDING, CallbackDelivery.leased_until.is_not(None))
        .values(leased_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def get_delivery(session: Session, job_id: str) -> CallbackDelivery | None:
    return session.get(CallbackDelivery, job_id)
