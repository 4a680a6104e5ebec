"""A report: one row per submitted report, with its typed features and, once scored, its score."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
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
    score: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(64))
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    review_outcome: Mapped[str | None] = mapped_column(String(16))
    """The current moderator outcome (``actioned`` / ``dismissed``; history in ``report_feedback``); null while
    the report waits in the queue."""
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


_UNREVIEWED = Report.review_outcome.is_(None) & Report.score.is_not(None)
# The moderation queue: a tenant's scored, unreviewed reports in (score DESC, id ASC) order; a reviewed report
# drops out of the index.
Index(
    "ix_reports_queue",
    Report.owner,
    Report.score.desc(),
    Report.id,
    sqlite_where=_UNREVIEWED,
    postgresql_where=_UNREVIEWED,
)
