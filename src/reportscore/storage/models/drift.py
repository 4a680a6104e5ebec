"""Drift histograms: per model version, window and feature, how many scored reports fell into each reference bin."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from reportscore.storage.models.base import Base, UTCDateTime


class DriftCount(Base):
    """One bin of one feature's histogram (or of the score's, feature ``score``) in one window.

    Incremented by the transaction that writes a batch's scores, so reading drift never scans reports. ``bin`` is
    the index of the version's reference bin (numeric fields and scores), or the category itself (``abuse_type``)."""

    __tablename__ = "drift_counts"

    model_version: Mapped[str] = mapped_column(String(64), nullable=False)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    """Start of the window (a multiple of ``drift_bucket_s`` since the epoch) in which the reports were scored."""
    feature: Mapped[str] = mapped_column(String(64), nullable=False)
    bin: Mapped[str] = mapped_column(String(32), nullable=False)
    count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), nullable=False)

    __table_args__ = (PrimaryKeyConstraint("model_version", "window_start", "feature", "bin"),)
