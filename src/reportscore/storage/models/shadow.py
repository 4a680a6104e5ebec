"""Shadow challengers: the versions scored beside the champion, and the scores they gave."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from reportscore.storage.models.base import Base, UTCDateTime

REPORT_ID = BigInteger().with_variant(Integer, "sqlite")


class ModelShadow(Base):
    """A registered version scored off the answer's path on a fraction of live reports (one row per shadow)."""

    __tablename__ = "model_shadows"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    fraction: Mapped[float] = mapped_column(Float, nullable=False)
    """The share of reports it scores (0 < fraction <= 1), chosen by report id so every process picks the same."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    started_by: Mapped[str] = mapped_column(String(128), nullable=False)


class ShadowScore(Base):
    """The score a shadow version gave a report; never part of a task's answer, the queue or callbacks."""

    __tablename__ = "shadow_scores"

    report_id: Mapped[int] = mapped_column(REPORT_ID, ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    __table_args__ = (Index("ix_shadow_scores_model_version_report_id", "model_version", "report_id"),)
