"""Online quality aggregates: moderators' outcomes counted per model version, hour of scoring and score bin.

Kept by the transaction that records an outcome, so reading quality metrics never scans reports."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from reportscore.storage.models.base import Base, UTCDateTime


class QualityBin(Base):
    """Labelled reports of one version, scored in one hour, whose score fell in one of the fine score bins."""

    __tablename__ = "quality_bins"

    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    """The start of the hour (UTC) in which the version scored the reports."""
    bin: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    """``floor(score * SCORE_BINS)``, clipped to ``0..SCORE_BINS-1``."""
    positives: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """Reports whose current outcome is ``actioned``."""
    negatives: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """Reports whose current outcome is ``dismissed``."""
    score_sum: Mapped[float] = mapped_column(Float, nullable=False)
    """Sum of the labelled reports' scores (mean prediction of a reliability bin)."""
    score_sq_sum: Mapped[float] = mapped_column(Float, nullable=False)
    """Sum of their squared scores (the Brier score, exactly)."""
    positive_score_sum: Mapped[float] = mapped_column(Float, nullable=False)
    """Sum of the scores of the positives (the Brier score, exactly)."""


class QualityLabelDelay(Base):
    """How long after scoring the first outcome of a version's reports arrived, as histogram counts."""

    __tablename__ = "quality_label_delays"

    model_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    """Index into ``LABEL_DELAY_BOUNDS_S`` (the last one counts delays above every bound)."""
    reports: Mapped[int] = mapped_column(BigInteger, nullable=False)
