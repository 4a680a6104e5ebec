"""New jobs and their reports, and the idempotency keys that name them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reportscore.storage.models import Job
from reportscore.storage.repositories.jobs.writer import NewJob, ScoredJob, writer_of


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
    return writer_of(session).insert_job(
        session,
        job_id=job_id,
        owner=owner,
        reports=reports,
        created_at=created_at,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        idempotency_expires_at=idempotency_expires_at,
        callback_url=callback_url,
    )


def insert_jobs(session: Session, *, jobs: Sequence[NewJob], created_at: datetime) -> dict[str, list[int]]:
    """Insert several PENDING jobs (no idempotency key) and all their reports; returns each job's report ids in
    order. On PostgreSQL that is two statements however many jobs: one for the jobs, one for every report."""
    return writer_of(session).insert_jobs(session, jobs=jobs, created_at=created_at)


def insert_scored_jobs(session: Session, *, jobs: Sequence[ScoredJob], finished_at: datetime) -> None:
    """Insert jobs that were scored in the request (``POST /score``): SUCCESS, their reports and their scores in the
    same commit (each row written once); the jobs of a group commit together in a few statements. A job whose
    scores do not match its reports in number is refused (``ValueError``) before anything is written."""
    for job in jobs:
        if len(job.scores) != len(job.reports):
            raise ValueError(f"job {job.job_id}: {len(job.scores)} scores for {len(job.reports)} reports")
    if jobs:
        writer_of(session).insert_scored_jobs(session, jobs=jobs, finished_at=finished_at)


def find_by_idempotency_key(session: Session, *, owner: str, key: str) -> Job | None:
    return session.scalars(select(Job).where(Job.owner == owner, Job.idempotency_key == key)).one_or_none()


def release_idempotency_key(session: Session, *, job_id: str) -> None:
    """Detach an expired key from its job so the key can name a new one."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(idempotency_key=None, request_sha256=None, idempotency_expires_at=None)
    )
