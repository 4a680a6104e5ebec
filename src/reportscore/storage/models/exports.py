"""Export bookkeeping: how far each incremental export has gone, so a scheduled run exports only what is new."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from reportscore.storage.models.base import Base, UTCDateTime
from reportscore.storage.models.jobs import Job


class ExportWatermark(Base):
    """One named incremental export: the last report it wrote, in ``(created_at, report id)`` order.

    A run first records the range it is about to write (``pending_run_id`` and ``pending_until``); once its files
    are durably written it moves the watermark and clears them in one transaction. A run that finds a pending range
    (the previous run died) writes that same range again under the same file names instead of a new one."""

    __tablename__ = "export_watermarks"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    last_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The creation time (the job's) of the last report exported; null before the first run completes."""
    last_report_id: Mapped[int | None] = mapped_column(BigInteger)
    pending_run_id: Mapped[str | None] = mapped_column(String(64))
    """The run that is writing files right now, or died doing so; null when the last run completed."""
    pending_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The exclusive upper bound of the pending run's range."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


# The export reads reports in the order of their job's creation time, page by page.
Index("ix_jobs_created_at", Job.created_at)
