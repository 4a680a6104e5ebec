"""Drift histograms: the per-batch aggregated UPSERT of bin counts, and the reads that sum them by window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reportscore.storage.models import DriftCount
from reportscore.storage.repositories.jobs.writer import writer_of

BinKey = tuple[str, datetime, str, str]
"""``(model_version, window_start, feature, bin)``."""


@dataclass(frozen=True)
class CountRow:
    window_start: datetime
    feature: str
    bin: str
    count: int


def add_counts(session: Session, counts: Mapping[BinKey, int]) -> None:
    """Add ``counts`` to the stored bins in one UPSERT (executed for all rows at once, by the database's writer), in
    the caller's transaction.

    Rows are written in key order, so concurrent writers (PostgreSQL workers) lock shared bins in the same order
    and cannot deadlock on them."""
    rows = [(v, w, f, b, n) for (v, w, f, b), n in sorted(counts.items()) if n]
    if rows:
        writer_of(session).add_drift_counts(session, rows)


def read_counts(
    session: Session, *, model_version: str, since: datetime | None = None, until: datetime | None = None
) -> list[CountRow]:
    """The stored bins of one version with ``since <= window_start < until``."""
    q = select(DriftCount.window_start, DriftCount.feature, DriftCount.bin, DriftCount.count).where(
        DriftCount.model_version == model_version
    )
    if since is not None:
        q = q.where(DriftCount.window_start >= since)
    if until is not None:
        q = q.where(DriftCount.window_start < until)
    return [CountRow(w, f, b, int(n)) for w, f, b, n in session.execute(q.order_by(DriftCount.window_start))]
