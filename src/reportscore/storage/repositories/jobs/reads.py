"""Reads of jobs and their reports: the task view, a claimed batch's features, and what is still unfinished."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from reportscore.storage.models import Job, JobStatus, Report, ReportScore
from reportscore.storage.models.jobs import TERMINAL_STATUSES
from reportscore.storage.repositories.jobs.fields import REPORT_COLUMNS, SELECT_COLUMNS, FeatureRows
from reportscore.storage.repositories.jobs.writer import writer_of


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


_JOB_REPORTS = text(
    "SELECT r.id, r.client_report_id, s.score FROM reports AS r LEFT JOIN report_scores AS s ON s.report_id = r.id "
    "WHERE r.job_id = :job_id ORDER BY r.position"
).columns(Report.id, Report.client_report_id, ReportScore.score)


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


_LOAD_FEATURES = select(*(Report.__table__.c[name] for name in SELECT_COLUMNS)).order_by(Report.job_id, Report.position)


def load_features(session: Session, job_ids: Sequence[str]) -> FeatureRows:
    """The jobs' reports, grouped by job (jobs in id order), each job's in submission order."""
    with writer_of(session).index_paths_only(session.connection()):
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
