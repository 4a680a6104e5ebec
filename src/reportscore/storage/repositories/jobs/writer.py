"""The job writes that differ by database (with the drift counts each scored job adds), behind one interface: the
``Database`` picks the writer of its dialect once, when it is created, and every session it opens carries it
(``session.info``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.orm import Session

SESSION_KEY = "reportscore.job_writer"


@dataclass(frozen=True)
class NewJob:
    """A job to insert PENDING with its reports (``insert_jobs``)."""

    job_id: str
    owner: str
    reports: Sequence[Mapping[str, Any]]
    callback_url: str | None = None


@dataclass(frozen=True)
class ScoredJob:
    """A job scored in the request (``POST /score``), to insert SUCCESS with its reports and their scores."""

    job_id: str
    owner: str
    reports: Sequence[Mapping[str, Any]]
    scores: Sequence[float]
    """One per report, in report order."""
    model_name: str
    model_version: str
    predict_ms: float
    created_at: datetime


DriftRow = tuple[str, datetime, str, str, int]
"""A drift bin's increment: ``(model_version, window_start, feature, bin, count)``."""


@dataclass(frozen=True)
class NewScore:
    """One report's score, as ``save_results`` inserts it."""

    report_id: int
    owner: str
    score: float
    model_version: str


class JobWriter(Protocol):
    """What a database's writer does; the methods mirror the public functions of this package."""

    def insert_job(
        self,
        session: Session,
        *,
        job_id: str,
        owner: str,
        reports: Sequence[Mapping[str, Any]],
        created_at: datetime,
        idempotency_key: str | None,
        request_sha256: str | None,
        idempotency_expires_at: datetime | None,
        callback_url: str | None,
    ) -> list[int]: ...

    def insert_jobs(
        self, session: Session, *, jobs: Sequence[NewJob], created_at: datetime
    ) -> dict[str, list[int]]: ...

    def insert_scored_jobs(self, session: Session, *, jobs: Sequence[ScoredJob], finished_at: datetime) -> None: ...

    def insert_scores(self, session: Session, *, scores: Sequence[NewScore], scored_at: datetime) -> None: ...

    def add_drift_counts(self, session: Session, rows: Sequence[DriftRow]) -> None: ...

    def index_paths_only(self, conn: Connection) -> AbstractContextManager[None]: ...

    def try_exclusive(self, session: Session, *, key: int) -> bool: ...


def writer_of(session: Session) -> JobWriter:
    """The writer of the database that opened ``session``."""
    try:
        return session.info[SESSION_KEY]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError("a session not opened by a reportscore Database has no job writer") from None
