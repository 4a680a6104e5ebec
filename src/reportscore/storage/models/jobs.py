"""A job: one accepted request of reports, scored together."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reportscore.storage.models.base import Base, UTCDateTime


class JobStatus(enum.StrEnum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


TERMINAL_STATUSES = (JobStatus.SUCCESS, JobStatus.FAILURE)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16, validate_strings=True), nullable=False
    )
    owner: Mapped[str] = mapped_column(String(128), nullable=False)
    n_reports: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(64))
    predict_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    idempotency_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """While STARTED: when the worker's claim runs out and the reconciler may hand the job to another."""
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the job id was last handed to the queue (distributed mode)."""
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    """Where the finished job's result is POSTed (see ``callback_deliveries``); None: no callback."""

    __table_args__ = (
        Index("uq_jobs_owner_idempotency_key", "owner", "idempotency_key", unique=True),
        Index("ix_jobs_status_created_at", "status", "created_at"),
    )
