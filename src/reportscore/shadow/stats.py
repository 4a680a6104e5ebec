"""The statistics of a champion-vs-challenger comparison, in numpy.

Labelled metrics take optional per-row weights, so a paired bootstrap resample is a vector of multiplicities over
rows sorted once (each resample costs a few passes over the rows, not a sort). With unit weights they equal
scikit-learn's ``roc_auc_score``, ``average_precision_score`` and ``brier_score_loss``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
TOP_K_PERCENT = (1, 5, 10)
HISTOGRAM_BINS = 20
MIN_LABELLED = 30
"""Below this many labelled reports (or without both outcomes) no verdict is attempted."""


def ranks(values: Floats) -> Floats:
    """Ranks 1..n, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(values)])
    average = first + (counts + 1) / 2.0
    out = np.empty(len(values), dtype=np.float64)
    out[order] = average[group]
    return out


def pearson(a: Floats, b: Floats) -> float | None:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a: Floats, b: Floats) -> float | None:
    return pearson(ranks(a), ranks(b))


def queue_order(scores: Floats, report_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Positions in the moderators' queue order: score descending, then report id ascending."""
    return np.lexsort((report_ids, -scores))


def top_k_count(n: int, percent: float) -> int:
    return max(1, math.ceil(n * percent / 100.0))


def top_k_overlap(a: Floats, b: Floats, report_ids: npt.NDArray[np.int64], percent: float) -> float | None:
    """Share of the top ``percent``% by ``a`` that is also in the top ``percent``% by ``b``."""
    if len(a) == 0:
        return None
    k = top_k_count(len(a), percent)
    top_a = set(queue_order(a, report_ids)[:k].tolist())
    top_b = set(queue_order(b, report_ids)[:k].tolist())
    return len(top_a & top_b) / k


class Ranked:
    """One model's scores on the labelled rows, grouped by distinct score once, for weighted metrics."""

    def __init__(self, scores: Floats, outcomes: Floats, report_ids: npt.NDArray[np.int64]) -> None:
        self.scores = scores
        self.outcomes = outcomes
        order = np.argsort(scores, kind="mergesort")
        sorted_scores = scores[order]
        starts = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]] if len(scores) else np.zeros(0, dtype=bool)
        self._order = order
        self._group = np.cumsum(starts) - 1
        self._n_groups = int(starts.sum())
        self._queue = queue_order(scores, report_ids)

    def _grouped(self, weights: Floats) -> tuple[Floats, Floats]:
        w = weights[self._order]
        y = self.outcomes[self._order]
        pos = np.bincount(self._group, weights=w * y, minlength=self._n_groups).astype(np.float64)
        neg = np.bincount(self._group, weights=w * (1 - y), minlength=self._n_groups).astype(np.float64)
        return pos, neg

    def roc_auc(self, weights: Floats) -> float:
        pos, neg = self._grouped(weights)
        below = np.cumsum(neg) - neg
        return float(np.sum(pos * (below + 0.5 * neg)) / (pos.sum() * neg.sum()))

    def pr_auc(self, weights: Floats) -> float:
        """Average precision (the step-wise area under the precision-recall curve)."""
        pos, neg = self._grouped(weights)
        tp = np.cumsum(pos[::-1])
        fp = np.cumsum(neg[::-1])
        keep = (tp + fp) > 0
        precision = np.where(keep, tp / np.where(keep, tp + fp, 1.0), 0.0)
        recall = tp / tp[-1]
        return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))

    def precision_at(self, weights: Floats, percent: float) -> float:
        """Actioned share of the top ``percent``% of labelled reports in queue order."""
        w = weights[self._queue]
        k = top_k_count(len(w), percent)
        taken = np.minimum(w, np.maximum(k - (np.cumsum(w) - w), 0.0))
        return float(np.sum(taken * self.outcomes[self._queue]) / np.sum(taken))

    def brier(self, weights: Floats) -> float:
        return float(np.sum(weights * (self.scores - self.outcomes) ** 2) / np.sum(weights))


LABELLED_METRICS: dict[str, tuple[str, bool]] = {
    "roc_auc": ("ROC AUC", True),
    "pr_auc": ("PR AUC (average precision)", True),
    "precision_at_10": ("precision of the top 10% labelled", True),
    "brier": ("Brier score", False),
}
"""Metric key → (title, higher is better)."""


def labelled_metric(ranked: Ranked, key: str, weights: Floats) -> float:
    if key == "roc_auc":
        return ranked.roc_auc(weights)
    if key == "pr_auc":
        return ranked.pr_auc(weights)
    if key == "precision_at_10":
        return ranked.precision_at(weights, 10)
    return ranked.brier(weights)


@dataclass(frozen=True)
class Difference:
    champion: float
    challenger: float
    difference: float
    """challenger - champion."""
    ci_low: float | None
    ci_high: float | None
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "champion": round(self.champion, 6),
            "challenger": round(self.challenger, 6),
            "difference": round(self.difference, 6),
            "ci95": None if self.ci_low is None else [round(self.ci_low, 6), round(self.ci_high or 0.0, 6)],
            "verdict": self.verdict,
        }


def undecided(n: int) -> str:
    return f"not distinguishable with {n} labelled reports"


def compare_labelled(
    champion: Floats,
    challenger: Floats,
    outcomes: Floats,
    report_ids: npt.NDArray[np.int64],
    *,
    resamples: int,
    seed: int = 20261206,
    budget: int = 50_000_000,
) -> dict[str, Difference] | None:
    """Each labelled metric of both models with a paired-bootstrap 95% CI of the difference; None when there are
    too few labelled reports or only one outcome. Resamples are capped so resamples * rows stays within ``budget``."""
    n = len(outcomes)
    if n < MIN_LABELLED or outcomes.min() == outcomes.max():
        return None
    a = Ranked(champion, outcomes, report_ids)
    b = Ranked(challenger, outcomes, report_ids)
    ones = np.ones(n)
    point = {k: (labelled_metric(a, k, ones), labelled_metric(b, k, ones)) for k in LABELLED_METRICS}
    rng = np.random.default_rng(seed)
    rounds = max(100, min(resamples, budget // n))
    diffs = {k: np.empty(rounds) for k in LABELLED_METRICS}
    done = 0
    while done < rounds:
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        if not (np.any(w * outcomes) and np.any(w * (1 - outcomes))):
            continue  # a resample with one outcome only has no AUC
        for k in LABELLED_METRICS:
            diffs[k][done] = labelled_metric(b, k, w) - labelled_metric(a, k, w)
        done += 1
    out: dict[str, Difference] = {}
    for k, (_, higher_better) in LABELLED_METRICS.items():
        low, high = (float(x) for x in np.percentile(diffs[k], [2.5, 97.5]))
        better = low > 0 if higher_better else high < 0
        worse = high < 0 if higher_better else low > 0
        verdict = "better" if better else "worse" if worse else undecided(n)
        champ, chall = point[k]
        out[k] = Difference(champ, chall, chall - champ, low, high, verdict)
    return out


def histogram(scores: Floats) -> list[int]:
    counts, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return [int(c) for c in counts]
