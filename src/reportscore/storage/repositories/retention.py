"""Retention's deletes, each bounded to ``limit`` rows so that its transaction stays short.

Purging a job deletes its reports, and through their foreign keys (``ON DELETE CASCADE``) every per-report row:
scores, feedback, reasons, and any table added later that references ``reports`` or ``jobs`` the same way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from reportscore.storage.models import CallbackDelivery, CallbackStatus, DriftCount, Job, Report
from reportscore.storage.models.jobs import TERMINAL_STATUSES


def purge_jobs(session: Session, *, before: datetime, keep_labelled: bool, limit: int) -> int:
    """Delete up to ``limit`` finished jobs created before ``before`` (oldest first) with all their rows; with
    ``keep_labelled`` a job any of whose reports has a moderator's outcome is kept. Returns the jobs deleted.

    Unfinished jobs are never purged: an accepted job always ends with a result."""
    q = select(Job.id).where(Job.created_at < before, Job.status.in_(TERMINAL_STATUSES))
    if keep_labelled:
        q = q.where(~exists().where(Report.job_id == Job.id, Report.review_outcome.is_not(None)))
    ids = list(session.scalars(q.order_by(Job.created_at).limit(limit)))
    if not ids:
        return 0
    # Reports first, in one statement: their cascades (scores, feedback, reasons) run per report either way, and
    # the job rows then go without a second cascade pass over reports.
    session.execute(delete(Report).where(Report.job_id.in_(ids)).execution_options(synchronize_session=False))
    done = session.execute(delete(Job).where(Job.id.in_(ids)).execution_options(synchronize_session=False))
    return int(done.rowcount)  # type: ignore[attr-defined]


def purge_drift_windows(session: Session, *, before: datetime) -> int:
    """Delete drift histograms of windows that started before ``before`` (a few rows per version and hour)."""
    done = session.execute(delete(DriftCount).where(DriftCount.window_start < before))
    return int(done.rowcount)  # type: ignore[attr-defined]


def clear_expired_idempotency_keys(session: Session, *, now: datetime, limit: int) -> int:
    """Forget up to ``limit`` Idempotency-Keys whose time ran out (the job itself stays); returns how many."""
    ids = list(session.scalars(select(Job.id).where(Job.idempotency_expires_at < now).limit(limit)))
    if not ids:
        return 0
    done = session.execute(
        update(Job)
        .where(Job.id.in_(ids), Job.idempotency_expires_at < now)
        .values(idempotency_key=None, request_sha256=None, idempotency_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def delete_delivered_callbacks(session: Session, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` outbox rows of callbacks delivered before ``before``; returns how many."""
    ids = list(
        session.scalars(
            select(CallbackDelivery.job_id)
            .where(CallbackDelivery.status == CallbackStatus.DELIVERED, CallbackDelivery.finished_at < before)
            .limit(limit)
        )
    )
    if not ids:
        return 0
    done = session.execute(
        delete(CallbackDelivery)
        .where(CallbackDelivery.job_id.in_(ids), CallbackDelivery.status == CallbackStatus.DELIVERED)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]
