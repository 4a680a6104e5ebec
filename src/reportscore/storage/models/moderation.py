"""Moderation: what reviewers decided about scored reports, and the reasons shown beside each score."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from reportscore.storage.models.base import Base, UTCDateTime

REPORT_ID = BigInteger().with_variant(Integer, "sqlite")


class ReportFeedback(Base):
    """An append-only history of outcomes; the latest row of a report is its current outcome (also copied onto
    ``reports.review_outcome``, and flagged on ``report_scores.reviewed`` so the queue's partial index leaves reviewed
    reports out)."""

    __tablename__ = "report_feedback"

    id: Mapped[int] = mapped_column(REPORT_ID, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(REPORT_ID, ForeignKey("reports.id", ondelete="CASCADE"), nullable=False)
    owner: Mapped[str] = mapped_column(String(128), nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    previous_outcome: Mapped[str | None] = mapped_column(String(16))
    """The outcome this row corrected, or null for a report's first review."""
    reviewer: Mapped[str] = mapped_column(String(128), nullable=False)
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    model_name: Mapped[str | None] = mapped_column(String(128))
    """The model (name and version) that scored the report, for online metrics; null if it was not scored."""
    model_version: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        CheckConstraint("outcome IN ('actioned', 'dismissed')", name="outcome"),
        Index("ix_report_feedback_report_id_id", "report_id", "id"),
        Index("ix_report_feedback_model_version_recorded_at", "model_version", "recorded_at"),
    )


class ReportReasons(Base):
    """The top feature contributions of a report under the model version that scored it, computed once on demand.

    ``reasons`` is null when that model's format gives no contributions (nothing is made up)."""

    __tablename__ = "report_reasons"

    report_id: Mapped[int] = mapped_column(REPORT_ID, ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), nullable=False)
    model_version: Mapped[str] = mapped_column(String(64), nullable=False)
    reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
