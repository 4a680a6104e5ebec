"""A report: one row per submitted report with its typed features; its score, once scored, is a row of
``report_scores`` (inserted once, never an UPDATE of this wide, indexed row)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from reportscore.storage.models.base import Base, UTCDateTime


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    owner: Mapped[str] = mapped_column(String(128), nullable=False, server_default="")
    """The job's owner (tenant), copied here so the moderation queue's index can start with it. The empty default
    only served to add the column to existing rows, which migration 0005 then filled in from their jobs."""
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    client_report_id: Mapped[str | None] = mapped_column(String(128))
    abuse_type: Mapped[str] = mapped_column(String(3), nullable=False)
    report_text_len: Mapped[int] = mapped_column(Integer, nullable=False)
    profile_rating: Mapped[float] = mapped_column(Float, nullable=False)
    popularity: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    lifetime_matches_created: Mapped[int] = mapped_column(Integer, nullable=False)
    review_outcome: Mapped[str | None] = mapped_column(String(16))
    """The current moderator outcome (``actioned`` / ``dismissed``; history in ``report_feedback``); null while
    the report waits in the queue (``report_scores.reviewed`` mirrors it for the queue's index)."""
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("abuse_type IN ('MSG', 'PRF')", name="abuse_type"),
        CheckConstraint("popularity BETWEEN 0 AND 5", name="popularity"),
        CheckConstraint("report_text_len >= 0", name="report_text_len"),
        CheckConstraint("lifetime_matches_created >= 0", name="lifetime_matches_created"),
        # also the index that reads a job's reports in order
        UniqueConstraint("job_id", "position"),
        Index("ix_reports_owner_client_report_id", "owner", "client_report_id"),
    )


class ReportScore(Base):
    """A report's score: one narrow row inserted when its job's result is committed (or with the report itself when
    it was scored in the request), so scoring never rewrites the report row and its indexes."""

    __tablename__ = "report_scores"

    report_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(128), nullable=False)
    """The report's owner (tenant), copied so the moderation queue's index can start with it."""
    score: Mapped[float] = mapped_column(Float, nullable=False)
    model_version: Mapped[str | None] = mapped_column(String(64))
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewed: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    """True once a moderator recorded an outcome (``reports.review_outcome``): the report leaves the queue's index.
    Set by the moderation write, at a person's pace, never on the scoring path."""


QUEUED = ReportScore.reviewed.is_(False)
# The moderation queue: a tenant's scored, unreviewed reports in (score DESC, report_id ASC) order; a reviewed
# report drops out of the index.
Index(
    "ix_report_scores_queue",
    ReportScore.owner,
    ReportScore.score.desc(),
    ReportScore.report_id,
    sqlite_where=QUEUED,
    postgresql_where=QUEUED,
)
