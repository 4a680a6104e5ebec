"""Champion vs challenger on the same live reports: one bounded streaming pass over paged rows from the store.

Sums, means, extremes and histograms cover every paired report. Rank statistics (Spearman, top-k overlap) and the
labelled metrics use the rows kept in memory: all of them up to ``max_reports``, beyond that a fixed-seed reservoir
sample of that size (the answer says so). Memory is bounded by ``max_reports`` whatever the window holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from reportscore.settings import Settings
from reportscore.shadow import stats
from reportscore.storage.db import Database
from reportscore.storage.repositories import shadow as shadow_repo

PAGE = 5000


class _Reservoir:
    """At most ``size`` rows (report id, champion, challenger, outcome), uniformly sampled (algorithm R)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self.data = np.empty((size, 4), dtype=np.float64)

    def add(self, rows: np.ndarray) -> None:
        free = min(self.size - self.seen, len(rows)) if self.seen < self.size else 0
        if free > 0:
            self.data[self.seen : self.seen + free] = rows[:free]
        rest = rows[free:]
        if len(rest):
            positions = np.arange(self.seen + free, self.seen + len(rows)) + 1
            slots = (self._rng.random(len(rest)) * positions).astype(np.int64)
            keep = slots < self.size
            self.data[slots[keep]] = rest[keep]
        self.seen += len(rows)

    @property
    def rows(self) -> np.ndarray:
        return self.data[: min(self.seen, self.size)]


@dataclass
class _Moments:
    """Running count, means, co-moments, absolute differences and histograms (merged page by page)."""

    n: int = 0
    mean_a: float = 0.0
    mean_b: float = 0.0
    m2_a: float = 0.0
    m2_b: float = 0.0
    c_ab: float = 0.0
    abs_sum: float = 0.0
    abs_max: float = 0.0
    hist_a: np.ndarray = field(default_factory=lambda: np.zeros(stats.HISTOGRAM_BINS, dtype=np.int64))
    hist_b: np.ndarray = field(default_factory=lambda: np.zeros(stats.HISTOGRAM_BINS, dtype=np.int64))

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        m = len(a)
        if m == 0:
            return
        ma, mb = float(a.mean()), float(b.mean())
        da, db = a - ma, b - mb
        n = self.n + m
        delta_a, delta_b = ma - self.mean_a, mb - self.mean_b
        self.m2_a += float(da @ da) + delta_a**2 * self.n * m / n
        self.m2_b += float(db @ db) + delta_b**2 * self.n * m / n
        self.c_ab += float(da @ db) + delta_a * delta_b * self.n * m / n
        self.mean_a += delta_a * m / n
        self.mean_b += delta_b * m / n
        self.n = n
        diff = np.abs(a - b)
        self.abs_sum += float(diff.sum())
        self.abs_max = max(self.abs_max, float(diff.max()))
        self.hist_a += np.asarray(stats.histogram(a))
        self.hist_b += np.asarray(stats.histogram(b))

    def pearson(self) -> float | None:
        if self.n < 2 or self.m2_a == 0 or self.m2_b == 0:
            return None
        return self.c_ab / math.sqrt(self.m2_a * self.m2_b)


@dataclass(frozen=True)
class Comparison:
    champion: str
    challenger: str
    n_reports: int
    n_sampled: int
    n_labelled: int
    agreement: dict[str, Any]
    histograms: dict[str, list[int]]
    labelled: dict[str, Any] | None
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "challenger": self.challenger,
            "n_reports": self.n_reports,
            "n_sampled": self.n_sampled,
            "n_labelled": self.n_labelled,
            "agreement": self.agreement,
            "histograms": self.histograms,
            "labelled": self.labelled,
            "verdict": self.verdict,
        }


def compare(
    *,
    db: Database,
    champion: str,
    challenger: str,
    since: datetime | None = None,
    until: datetime | None = None,
    abuse_type: str | None = None,
    max_reports: int = 200_000,
    resamples: int = 1000,
    page: int = PAGE,
) -> Comparison:
    """Compare two versions on the reports both scored in ``[since, until)`` (optionally one abuse type)."""
    moments = _Moments()
    sample = _Reservoir(max_reports, seed=1)
    labelled = _Reservoir(max_reports, seed=2)
    after = 0
    while True:
        with db.read() as session:
            rows = shadow_repo.paired_page(
                session,
                champion=champion,
                challenger=challenger,
                since=since,
                until=until,
                abuse_type=abuse_type,
                after_report_id=after,
                limit=page,
            )
        if not rows.report_ids:
            break
        a = np.asarray(rows.champion, dtype=np.float64)
        b = np.asarray(rows.challenger, dtype=np.float64)
        moments.add(a, b)
        y = np.asarray([-1.0 if o is None else float(o) for o in rows.outcomes])
        block = np.column_stack([np.asarray(rows.report_ids, dtype=np.float64), a, b, y])
        sample.add(block)
        labelled.add(block[y >= 0])
        after = rows.report_ids[-1]
        if len(rows.report_ids) < page:
            break
    return _summarise(champion, challenger, moments, sample, labelled, resamples)


def _summarise(
    champion: str, challenger: str, moments: _Moments, sample: _Reservoir, labelled: _Reservoir, resamples: int
) -> Comparison:
    kept = sample.rows
    ids = kept[:, 0].astype(np.int64)
    a, b = kept[:, 1], kept[:, 2]
    agreement: dict[str, Any] = {
        "pearson": _round(moments.pearson()),
        "spearman": _round(stats.spearman(a, b)),
        "mean_abs_diff": _round(moments.abs_sum / moments.n if moments.n else None),
        "max_abs_diff": _round(moments.abs_max if moments.n else None),
        "top_k_overlap": {f"{k}%": _round(stats.top_k_overlap(a, b, ids, k)) for k in stats.TOP_K_PERCENT},
    }
    lab = labelled.rows
    n_labelled = labelled.seen
    labelled_out: dict[str, Any] | None = None
    verdict = stats.undecided(n_labelled)
    if len(lab):
        lab_ids = lab[:, 0].astype(np.int64)
        result = stats.compare_labelled(lab[:, 1], lab[:, 2], lab[:, 3], lab_ids, resamples=resamples)
        ones = np.ones(len(lab))
        precision = {
            f"{k}%": {
                "champion": _round(stats.Ranked(lab[:, 1], lab[:, 3], lab_ids).precision_at(ones, k)),
                "challenger": _round(stats.Ranked(lab[:, 2], lab[:, 3], lab_ids).precision_at(ones, k)),
            }
            for k in stats.TOP_K_PERCENT
        }
        if result is not None:
            labelled_out = {"metrics": {k: d.as_dict() for k, d in result.items()}, "precision_at_k": precision}
            verdict = result["roc_auc"].verdict
    return Comparison(
        champion=champion,
        challenger=challenger,
        n_reports=moments.n,
        n_sampled=len(kept),
        n_labelled=n_labelled,
        agreement=agreement,
        histograms={"champion": moments.hist_a.tolist(), "challenger": moments.hist_b.tolist()},
        labelled=labelled_out,
        verdict=verdict,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def compare_with_champion(
    *,
    db: Database,
    settings: Settings,
    challenger: str,
    champion: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    abuse_type: str | None = None,
) -> Comparison:
    """``compare`` with the current champion by default and the limits of ``settings``."""
    from reportscore.storage.repositories import models as models_repo

    if champion is None:
        with db.read() as session:
            row = models_repo.champion(session, name=settings.model_name)
        if row is None:
            raise LookupError("no champion is registered")
        champion = row.version
    return compare(
        db=db,
        champion=champion,
        challenger=challenger,
        since=since,
        until=until,
        abuse_type=abuse_type,
        max_reports=settings.compare_max_reports,
        resamples=settings.compare_bootstrap_resamples,
    )
