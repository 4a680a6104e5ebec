"""Read-only statistics for monitoring: queue depth, the oldest pending job, job ages and recent failures.

Every query here is served by the ``(status, created_at)`` index or the primary key, so it stays cheap however
many finished jobs the table holds (the gauges are read at every scrape and every dashboard refresh).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reportscore.storage.models import Job, JobStatus


@dataclass(frozen=True)
class QueueStats:
    """Unfinished jobs right now."""

    pending: int
    started: int
    oldest_pending_created_at: datetime | None


def queue_stats(session: Session) -> QueueStats:
    """How many jobs are PENDING and STARTED, and when the oldest PENDING one was created."""
    rows = session.execute(
        select(Job.status, func.count(), func.min(Job.created_at))
        .where(Job.status.in_((JobStatus.PENDING, JobStatus.STARTED)))
        .group_by(Job.status)
    ).all()
    by_status = {JobStatus(status): (int(count), oldest) for status, count, oldest in rows}
    pending, oldest = by_status.get(JobStatus.PENDING, (0, None))
    started, _ = by_status.get(JobStatus.STARTED, (0, None))
    return QueueStats(pending=pending, started=started, oldest_pending_created_at=oldest)


@dataclass(frozen=True)
class FailedJob:
    task_id: str
    created_at: datetime
    finished_at: datetime | None
    model_version: str | None
    error: str | None


def recent_failures(session: Session, *, limit: int) -> list[FailedJob]:
    """The most recently created jobs that ended FAILURE, newest first."""
    rows = session.execute(
        select(Job.id, Job.created_at, Job.finished_at, Job.model_version, Job.error)
        .where(Job.status == JobStatus.FAILURE)
        .order_by(Job.created_at.desc())
        .limit(limit)
    ).all()
    return [FailedJob(task_id=r[0], created_at=r[1], finished_at=r[2], model_version=r[3], error=r[4]) for r in rows]
