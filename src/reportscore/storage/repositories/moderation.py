"""The moderation queue, moderators' outcomes and stored reasons: all their SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reportscore.storage.models import Job, Report, ReportFeedback, ReportReasons, ReportScore
from reportscore.storage.models.reports import QUEUED
from reportscore.storage.repositories.jobs import REPORT_COLUMNS


@dataclass(frozen=True)
class ReviewRow:
    """A scored report as the queue (and ``?explain=true``) shows it, with its features and any stored reasons."""

    id: int
    client_report_id: str | None
    job_id: str
    score: float
    model_name: str | None
    model_version: str | None
    submitted_at: datetime
    scored_at: datetime | None
    features: dict[str, Any]
    reasons_stored: bool
    reasons: list[dict[str, Any]] | None


def _review_select() -> Select[Any]:
    return (
        select(
            Report.id,
            Report.client_report_id,
            Report.job_id,
            ReportScore.score,
            Job.model_name,
            ReportScore.model_version,
            Job.created_at,
            ReportScore.scored_at,
            ReportReasons.report_id,
            ReportReasons.reasons,
            *(getattr(Report, name) for name in REPORT_COLUMNS),
        )
        .join(ReportScore, ReportScore.report_id == Report.id)
        .join(Job, Job.id == Report.job_id)
        .outerjoin(ReportReasons, ReportReasons.report_id == Report.id)
    )


def _review_rows(rows: Sequence[Any]) -> list[ReviewRow]:
    return [
        ReviewRow(
            id=r[0],
            client_report_id=r[1],
            job_id=r[2],
            score=r[3],
            model_name=r[4],
            model_version=r[5],
            submitted_at=r[6],
            scored_at=r[7],
            reasons_stored=r[8] is not None,
            reasons=r[9],
            features=dict(zip(REPORT_COLUMNS, r[10:], strict=True)),
        )
        for r in rows
    ]


def queue_query(
    *, owner: str, limit: int, abuse_type: str | None = None, after: tuple[float, int] | None = None
) -> Select[Any]:
    """Up to ``limit`` scored, unreviewed reports of ``owner`` in (score DESC, id ASC) order, strictly after the
    key ``after`` = (score, id) of the previous page's last report. Served by the partial index
    ``ix_report_scores_queue`` (owner, score DESC, report_id) of unreviewed scores: no sort, and it stops after
    ``limit`` rows.

    A report has a score only once its job committed SUCCESS (results and status are written together).
    """
    query = _review_select().where(ReportScore.owner == owner, QUEUED)
    if abuse_type is not None:
        query = query.where(Report.abuse_type == abuse_type)
    if after is not None:
        score, report_id = after
        query = query.where(
            or_(ReportScore.score < score, and_(ReportScore.score == score, ReportScore.report_id > report_id))
        )
    return query.order_by(ReportScore.score.desc(), ReportScore.report_id.asc()).limit(limit)


def queue_page(
    session: Session,
    *,
    owner: str,
    limit: int,
    abuse_type: str | None = None,
    after: tuple[float, int] | None = None,
) -> list[ReviewRow]:
    """One page of the queue (see :func:`queue_query`)."""
    query = queue_query(owner=owner, limit=limit, abuse_type=abuse_type, after=after)
    return _review_rows(session.execute(query).all())


def job_review_rows(session: Session, *, job_id: str) -> list[ReviewRow]:
    """The scored reports of one job in request order (for ``GET /task/{id}?explain=true``)."""
    rows = session.execute(_review_select().where(Report.job_id == job_id).order_by(Report.position)).all()
    return _review_rows(rows)


def save_reasons(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Store computed reasons (report_id, model_name, model_version, reasons, computed_at); a report whose reasons
    another request stored meanwhile keeps those (they are the same numbers)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(ReportReasons).on_conflict_do_nothing(index_elements=["report_id"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(ReportReasons).on_conflict_do_nothing(index_elements=["report_id"])
    else:
        stmt = insert(ReportReasons)
    session.execute(stmt, list(rows))


@dataclass(frozen=True)
class FeedbackTarget:
    id: int
    client_report_id: str | None
    review_outcome: str | None
    score: float | None
    model_name: str | None
    model_version: str | None


def feedback_target(
    session: Session, *, owner: str, report_id: int | None = None, client_report_id: str | None = None
) -> FeedbackTarget | None:
    """The report of ``owner`` with this internal id, or the most recent one with this client id; its row is locked
    until the transaction ends (PostgreSQL), so concurrent outcomes for one report are applied one after the other."""
    query = (
        select(
            Report.id,
            Report.client_report_id,
            Report.review_outcome,
            ReportScore.score,
            Job.model_name,
            ReportScore.model_version,
        )
        .join(Job, Job.id == Report.job_id)
        .outerjoin(ReportScore, ReportScore.report_id == Report.id)
        .where(Report.owner == owner)
    )
    if report_id is not None:
        query = query.where(Report.id == report_id)
    else:
        query = query.where(Report.client_report_id == client_report_id).order_by(Report.id.desc()).limit(1)
    row = session.execute(query.with_for_update(of=Report)).first()
    if row is None:
        return None
    return FeedbackTarget(
        id=row[0],
        client_report_id=row[1],
        review_outcome=row[2],
        score=row[3],
        model_name=row[4] if row[5] is not None else None,
        model_version=row[5],
    )


def record_outcome(
    session: Session,
    *,
    target: FeedbackTarget,
    owner: str,
    outcome: str,
    reviewer: str,
    reviewed_at: datetime,
    recorded_at: datetime,
) -> None:
    """Append an outcome to the report's history and make it the report's current one (it leaves the queue: its
    score row is flagged reviewed, which takes it out of the queue's index)."""
    session.execute(
        insert(ReportFeedback).values(
            report_id=target.id,
            owner=owner,
            outcome=outcome,
            previous_outcome=target.review_outcome,
            reviewer=reviewer,
            reviewed_at=reviewed_at,
            recorded_at=recorded_at,
            model_name=target.model_name,
            model_version=target.model_version,
            score=target.score,
        )
    )
    session.execute(
        update(Report)
        .where(Report.id == target.id)
        .values(review_outcome=outcome, reviewed_at=reviewed_at)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(ReportScore)
        .where(ReportScore.report_id == target.id, ReportScore.reviewed.is_(False))
        .values(reviewed=True)
        .execution_options(synchronize_session=False)
    )


def feedback_history(session: Session, *, report_id: int) -> list[ReportFeedback]:
    """Every outcome recorded for a report, oldest first."""
    return list(
        session.scalars(select(ReportFeedback).where(ReportFeedback.report_id == report_id).order_by(ReportFeedback.id))
    )
