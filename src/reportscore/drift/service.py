"""Drift kept incrementally and read per window.

Scoring calls :func:`batch_counts` with the batch's features and scores, and :func:`record` inside the transaction
that writes the scores: one aggregated UPSERT of ``(version, window start, feature, bin)`` counts. Reading
(:func:`drift_report`) sums the stored bins of a version by window and computes PSI against its reference: no
report is read."""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from sqlalchemy.orm import Session

from reportscore.drift.bins import ReferenceBins, window_start
from reportscore.drift.psi import psi
from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.storage.db import Database
from reportscore.storage.repositories import drift as drift_repo
from reportscore.storage.repositories import models as models_repo

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 3600
Status = Literal["ok", "warn", "alert", "too_few"]


@dataclass(frozen=True)
class Thresholds:
    warn: float = 0.1
    alert: float = 0.25
    min_reports: int = 200

    def status(self, value: float | None, n: int) -> Status:
        if value is None or n < self.min_reports:
            return "too_few"
        if value >= self.alert:
            return "alert"
        return "warn" if value >= self.warn else "ok"


@dataclass(frozen=True)
class WindowDrift:
    start: datetime
    end: datetime
    n_reports: int
    psi: dict[str, float | None]
    """PSI by feature (``score`` for the score distribution)."""
    status: dict[str, Status]
    worst: Status


@dataclass(frozen=True)
class DriftReport:
    model_version: str
    window_s: int
    thresholds: Thresholds
    windows: list[WindowDrift] = field(default_factory=list)


class _References:
    """Reference bins by ``(model name, version)``, read once per process (a version's reference never changes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], ReferenceBins | None] = {}

    def get(self, db: Database, *, name: str, version: str) -> ReferenceBins | None:
        key = (db.url, name, version)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        with db.read() as session:
            row = models_repo.get_version(session, name=name, version=version)
            reference = row.reference if row is not None else _bundled_reference(name, version)
        bins = ReferenceBins.from_reference(reference) if reference else None
        with self._lock:
            self._cache[key] = bins
        return bins


@functools.cache
def _bundled() -> tuple[str, str, dict[str, Any]]:
    meta = json.loads((REFERENCE_MODEL_DIR / "metadata.json").read_text())
    reference = json.loads((REFERENCE_MODEL_DIR / "reference.json").read_text())
    return str(meta["name"]), str(meta["version"]), reference


def _bundled_reference(name: str, version: str) -> dict[str, Any] | None:
    """The bundled model serves before anything is registered: its reference ships beside it."""
    b_name, b_version, reference = _bundled()
    return reference if (name, version) == (b_name, b_version) else None


REFERENCES = _References()


def batch_counts(
    db: Database,
    *,
    model_name: str,
    model_version: str,
    columns: Mapping[str, Sequence[Any] | np.ndarray],
    scores: Sequence[float] | np.ndarray,
    scored_at: datetime,
    window_s: int = DEFAULT_WINDOW_S,
) -> dict[drift_repo.BinKey, int]:
    """The batch's bin counts, keyed for :func:`record`; empty (and logged) when the version has no usable
    reference or counting fails: drift never fails a scoring."""
    try:
        bins = REFERENCES.get(db, name=model_name, version=model_version)
        if bins is None:
            return {}
        start = window_start(scored_at, window_s)
        return {
            (model_version, start, feature, label): n
            for (feature, label), n in bins.batch_counts(columns=columns, scores=scores).items()
        }
    except Exception:
        log.warning("drift counts skipped for a batch", extra={"model_version": model_version}, exc_info=True)
        return {}


def counter(
    db: Database, *, model_name: str, model_version: str
) -> Callable[[Mapping[str, Sequence[Any]], Sequence[float], datetime], dict[drift_repo.BinKey, int]]:
    """:func:`batch_counts` bound to one version: ``count(columns, scores, scored_at)``, for a caller that counts
    several batches together later (the group commit of ``POST /score``)."""

    def count(
        columns: Mapping[str, Sequence[Any]], scores: Sequence[float], scored_at: datetime
    ) -> dict[drift_repo.BinKey, int]:
        return batch_counts(
            db, model_name=model_name, model_version=model_version, columns=columns, scores=scores, scored_at=scored_at
        )

    return count


def record(session: Session, counts: Mapping[drift_repo.BinKey, int]) -> None:
    """Add a batch's counts in the caller's (the results') transaction."""
    drift_repo.add_counts(session, counts)


def drift_report(
    db: Database,
    *,
    model_name: str,
    model_version: str,
    window_s: int,
    since: datetime,
    until: datetime,
    thresholds: Thresholds,
    bucket_s: int = DEFAULT_WINDOW_S,
) -> DriftReport:
    """PSI per feature and for the score, per window of ``window_s`` (a multiple of the stored ``bucket_s``)
    in ``[since, until)``, windows aligned to the epoch; LookupError when the version has no reference."""
    if window_s % bucket_s != 0:
        raise ValueError(f"the window must be a multiple of {bucket_s} s (the stored histogram resolution)")
    bins = REFERENCES.get(db, name=model_name, version=model_version)
    if bins is None:
        raise LookupError(f"{model_name} {model_version} has no reference distribution to compare against")
    first = window_start(since, window_s)
    with db.read() as session:
        rows = drift_repo.read_counts(session, model_version=model_version, since=first, until=until)
    per_window: dict[datetime, dict[str, dict[str, int]]] = {}
    for row in rows:
        w = window_start(row.window_start, window_s)
        feats = per_window.setdefault(w, {})
        feats.setdefault(row.feature, {})
        feats[row.feature][row.bin] = feats[row.feature].get(row.bin, 0) + row.count
    report = DriftReport(model_version=model_version, window_s=window_s, thresholds=thresholds)
    order: list[Status] = ["too_few", "ok", "warn", "alert"]
    for start in sorted(per_window):
        feats = per_window[start]
        n = max((sum(c.values()) for c in feats.values()), default=0)
        values = {name: psi(fb.expected, feats.get(name, {})) for name, fb in bins.fields.items()}
        status = {name: thresholds.status(v, n) for name, v in values.items()}
        worst: Status = max(status.values(), key=order.index, default="too_few")
        report.windows.append(
            WindowDrift(
                start=start,
                end=start + timedelta(seconds=window_s),
                n_reports=n,
                psi=values,
                status=status,
                worst=worst,
            )
        )
    return report
