"""Drift histograms: the per-batch aggregated UPSERT of bin counts, and the reads that sum them by window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from reportscore.storage.models import DriftCount
from reportscore.storage.models.base import UTCDateTime

BinKey = tuple[str, datetime, str, str]
"""``(model_version, window_start, feature, bin)``."""


@dataclass(frozen=True)
class CountRow:
    window_start: datetime
    feature: str
    bin: str
    count: int


_UPSERT = text(
    "INSERT INTO drift_counts (model_version, window_start, feature, bin, count) "
    "VALUES (:v, :w, :f, :b, :n) "
    "ON CONFLICT (model_version, window_start, feature, bin) DO UPDATE SET count = drift_counts.count + excluded.count"
).bindparams(bindparam("w", type_=UTCDateTime()))
"""The same SQL on SQLite (3.24+) and PostgreSQL; a plain executemany (no ORM statement to compile per batch)."""


def add_counts(session: Session, counts: Mapping[BinKey, int]) -> None:
    """Add ``counts`` to the stored bins in one UPSERT (executed for all rows at once), in the caller's transaction.

    Rows are written in key order, so concurrent writers (PostgreSQL workers) lock shared bins in the same order
    and cannot deadlock on them."""
    rows: list[dict[str, Any]] = [
        {"v": v, "w": w, "f": f, "b": b, "n": n} for (v, w, f, b), n in sorted(counts.items()) if n
    ]
    if rows:
        session.execute(_UPSERT, rows)


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
