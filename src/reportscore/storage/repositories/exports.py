"""The export's reads: reports with their job, score, outcome and reasons, page by page in ``(created_at, id)``
order; and the watermark of each named incremental export. The same SQL serves SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from reportscore.storage.models import ExportWatermark, Job, JobStatus, Report, ReportReasons, ReportScore

EXPORT_COLUMNS: tuple[str, ...] = (
    "report_id",
    "job_id",
    "owner",
    "created_at",
    "position",
    "client_report_id",
    "abuse_type",
    "report_text_len",
    "profile_rating",
    "popularity",
    "lifetime_matches_created",
    "job_status",
    "model_name",
    "model_version",
    "score",
    "scored_at",
    "review_outcome",
    "reviewed_at",
    "reasons",
)
"""The columns of a page row, in order (``reasons`` is the stored JSON text, or null)."""


@dataclass(frozen=True)
class ExportKey:
    """A position in the export order: the job's creation time, then the report id."""

    created_at: datetime
    report_id: int


@dataclass(frozen=True)
class ExportRange:
    """Reports whose job was created in ``[since, until)``, after ``after`` when given."""

    since: datetime | None
    until: datetime
    after: ExportKey | None = None


def _report_rows(rng: ExportRange, *columns: Any) -> Select[Any]:
    """Reports with their job, score and stored reasons, restricted to ``rng``: the one query every read starts from."""
    conditions = [Job.created_at < rng.until]
    if rng.since is not None:
        conditions.append(Job.created_at >= rng.since)
    if rng.after is not None:
        # Spelled out (not a row-value comparison) so both databases range-scan the created_at index.
        conditions.append(Job.created_at >= rng.after.created_at)
        conditions.append(
            or_(
                Job.created_at > rng.after.created_at,
                and_(Job.created_at == rng.after.created_at, Report.id > rng.after.report_id),
            )
        )
    return (
        select(*columns)
        .select_from(Report)
        .join(Job, Job.id == Report.job_id)
        .outerjoin(ReportScore, ReportScore.report_id == Report.id)
        .outerjoin(ReportReasons, ReportReasons.report_id == Report.id)
        .where(*conditions)
    )


def export_page(session: Session, rng: ExportRange, *, limit: int) -> Sequence[tuple[Any, ...]]:
    """The next ``limit`` reports of ``rng`` in ``(created_at, report id)`` order, as :data:`EXPORT_COLUMNS`."""
    query = _report_rows(
        rng,
        Report.id,
        Report.job_id,
        Report.owner,
        Job.created_at,
        Report.position,
        Report.client_report_id,
        Report.abuse_type,
        Report.report_text_len,
        Report.profile_rating,
        Report.popularity,
        Report.lifetime_matches_created,
        Job.status,
        Job.model_name,
        ReportScore.model_version,
        ReportScore.score,
        ReportScore.scored_at,
        Report.review_outcome,
        Report.reviewed_at,
        cast(ReportReasons.reasons, Text),
    ).order_by(Job.created_at, Report.id)
    return [tuple(row) for row in session.execute(query.limit(limit)).all()]


def count_reports(session: Session, rng: ExportRange) -> int:
    """How many reports ``rng`` holds (for a progress bar)."""
    return int(session.execute(_report_rows(rng, func.count())).scalar_one())


def oldest_unfinished_created_at(session: Session) -> datetime | None:
    """The creation time of the oldest job not yet SUCCESS or FAILURE (its reports' scores may still change)."""
    return session.execute(
        select(func.min(Job.created_at)).where(Job.status.in_((JobStatus.PENDING, JobStatus.STARTED)))
    ).scalar_one()


class RunSupersededError(Exception):
    """Another run of the same export completed the pending range first."""


@dataclass(frozen=True)
class Watermark:
    name: str
    last: ExportKey | None
    pending_run_id: str | None
    pending_until: datetime | None


def read_watermark(session: Session, name: str, *, for_update: bool = False) -> Watermark | None:
    """The export's watermark; ``for_update`` locks its row until the transaction ends (PostgreSQL; a SQLite write
    transaction already excludes every other writer)."""
    row = session.get(ExportWatermark, name, with_for_update=for_update or None)
    if row is None:
        return None
    last = (
        ExportKey(row.last_created_at, row.last_report_id)
        if row.last_created_at is not None and row.last_report_id is not None
        else None
    )
    return Watermark(name=name, last=last, pending_run_id=row.pending_run_id, pending_until=row.pending_until)


def begin_run(session: Session, name: str, *, run_id: str, until: datetime, now: datetime) -> None:
    """Record the range a run is about to write (the watermark itself does not move)."""
    row = session.get(ExportWatermark, name, with_for_update=True)
    if row is None:
        row = ExportWatermark(name=name, updated_at=now)
        session.add(row)
    row.pending_run_id = run_id
    row.pending_until = until
    row.updated_at = now


def complete_run(session: Session, name: str, *, run_id: str, last: ExportKey | None, now: datetime) -> None:
    """Move the watermark to ``last`` (unchanged when the run found nothing) and clear the pending run."""
    row = session.get(ExportWatermark, name, with_for_update=True)
    if row is None or row.pending_run_id != run_id:
        raise RunSupersededError(
            f"export {name!r}: run {run_id} is no longer the pending run: another run of the same export completed "
            "its range (written under the same file names) first"
        )
    if last is not None:
        row.last_created_at = last.created_at
        row.last_report_id = last.report_id
    row.pending_run_id = None
    row.pending_until = None
    row.updated_at = now
