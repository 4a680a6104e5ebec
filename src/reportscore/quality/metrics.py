"""Quality metrics computed from binned outcome counts (never from report rows).

Scores are kept in ``SCORE_BINS`` fine bins per version; within a bin every score counts as tied. ROC AUC, PR AUC
(average precision) and precision@k are therefore those of the scores rounded down to ``1/SCORE_BINS``: exact
for such scores, and off by at most the share of (positive, negative) pairs that fall in one bin otherwise. The
Brier score, the positive rate and the calibration (mean prediction and positive share per reliability bin) use
exact sums.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from reportscore.storage.repositories.quality import LABEL_DELAY_BOUNDS_S, SCORE_BINS, BinRow

RELIABILITY_BINS = 10
_PER_RELIABILITY_BIN = SCORE_BINS // RELIABILITY_BINS


@dataclass
class Binned:
    """Outcome counts of one version and window, by fine score bin, and its label-delay histogram."""

    positives: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(SCORE_BINS, dtype=np.int64))
    negatives: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(SCORE_BINS, dtype=np.int64))
    score_sum: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(SCORE_BINS))
    score_sq_sum: float = 0.0
    positive_score_sum: float = 0.0
    delays: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(len(LABEL_DELAY_BOUNDS_S) + 1, dtype=np.int64)
    )

    def add(self, rows: Iterable[BinRow]) -> None:
        rows = list(rows)
        if not rows:
            return
        bins = np.fromiter((r.bin for r in rows), dtype=np.int64, count=len(rows))
        np.add.at(self.positives, bins, np.fromiter((r.positives for r in rows), dtype=np.int64, count=len(rows)))
        np.add.at(self.negatives, bins, np.fromiter((r.negatives for r in rows), dtype=np.int64, count=len(rows)))
        np.add.at(self.score_sum, bins, np.fromiter((r.score_sum for r in rows), dtype=np.float64, count=len(rows)))
        self.score_sq_sum += math.fsum(r.score_sq_sum for r in rows)
        self.positive_score_sum += math.fsum(r.positive_score_sum for r in rows)

    @property
    def labelled(self) -> int:
        return int(self.positives.sum() + self.negatives.sum())

    def add_delays(self, rows: Iterable[tuple[int, int]]) -> None:
        for bucket, reports in rows:
            self.delays[bucket] += reports


def _curve(b: Binned) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Cumulative (true positives, false positives) at each non-empty bin taken as threshold, highest first."""
    pos, neg = b.positives[::-1], b.negatives[::-1]
    keep = (pos + neg) > 0
    return np.cumsum(pos)[keep], np.cumsum(neg)[keep]


def roc_auc(b: Binned) -> float | None:
    """Area under the ROC curve (trapezoids: ties within a bin count one half); None without both labels."""
    n_pos, n_neg = int(b.positives.sum()), int(b.negatives.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    tp, fp = _curve(b)
    tpr = np.concatenate([[0.0], tp / n_pos])
    fpr = np.concatenate([[0.0], fp / n_neg])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def pr_auc(b: Binned) -> float | None:
    """Average precision (scikit-learn's ``average_precision_score``): sum of precision * recall step."""
    n_pos = int(b.positives.sum())
    if n_pos == 0:
        return None
    tp, fp = _curve(b)
    precision = tp / (tp + fp)
    recall = np.concatenate([[0.0], tp / n_pos])
    return float(np.sum(np.diff(recall) * precision))


def precision_at_k(b: Binned, k: int) -> float | None:
    """Share of positives among the ``k`` highest-scored labelled reports (the tied bin at the cut counts at its
    positive share); None with fewer than ``k`` labelled reports."""
    pos, neg = b.positives[::-1], b.negatives[::-1]
    counts = pos + neg
    if k <= 0 or int(counts.sum()) < k:
        return None
    cum = np.cumsum(counts)
    cut = int(np.searchsorted(cum, k))  # first bin where the cumulative count reaches k
    before = int(cum[cut] - counts[cut])
    taken = k - before
    tp = float(pos[:cut].sum()) + taken * float(pos[cut]) / float(counts[cut])
    return tp / k


def brier(b: Binned) -> float | None:
    """Mean squared difference between score and outcome, from exact sums: (sum s^2 - 2 sum s*y + sum y) / n."""
    n = int(b.positives.sum() + b.negatives.sum())
    if n == 0:
        return None
    return float((b.score_sq_sum - 2 * b.positive_score_sum + int(b.positives.sum())) / n)


def reliability(b: Binned) -> list[dict[str, Any]]:
    """Ten equal-width bins of score: reports, mean score and share of positives in each."""
    out: list[dict[str, Any]] = []
    for i in range(RELIABILITY_BINS):
        sl = slice(i * _PER_RELIABILITY_BIN, (i + 1) * _PER_RELIABILITY_BIN)
        n = int(b.positives[sl].sum() + b.negatives[sl].sum())
        out.append(
            {
                "lower": i / RELIABILITY_BINS,
                "upper": (i + 1) / RELIABILITY_BINS,
                "reports": n,
                "mean_score": float(b.score_sum[sl].sum() / n) if n else None,
                "positive_rate": float(b.positives[sl].sum() / n) if n else None,
            }
        )
    return out


def ece(bins: list[dict[str, Any]]) -> float | None:
    """Expected calibration error: sum over bins of (reports in bin / reports) * |positive share - mean score|."""
    n = sum(x["reports"] for x in bins)
    if n == 0:
        return None
    return float(sum(x["reports"] / n * abs(x["positive_rate"] - x["mean_score"]) for x in bins if x["reports"]))


def label_delay(b: Binned) -> dict[str, Any]:
    """The label-delay histogram and its median and 90th percentile as bucket upper bounds (None above the last)."""
    total = int(b.delays.sum())
    buckets = [{"le_s": bound, "reports": int(b.delays[i])} for i, bound in enumerate((*LABEL_DELAY_BOUNDS_S, None))]

    def quantile(q: float) -> float | None:
        if total == 0:
            return None
        i = int(np.searchsorted(np.cumsum(b.delays), q * total))
        return float(LABEL_DELAY_BOUNDS_S[i]) if i < len(LABEL_DELAY_BOUNDS_S) else None

    return {"reports": total, "p50_le_s": quantile(0.5), "p90_le_s": quantile(0.9), "buckets": buckets}


def summary(b: Binned, *, k: int) -> dict[str, Any]:
    """Every metric of one version and window."""
    pos, n = int(b.positives.sum()), int(b.positives.sum() + b.negatives.sum())
    bins = reliability(b)
    return {
        "labelled": n,
        "positive_rate": pos / n if n else None,
        "roc_auc": roc_auc(b),
        "pr_auc": pr_auc(b),
        "k": k,
        "precision_at_k": precision_at_k(b, k),
        "brier": brier(b),
        "ece": ece(bins),
        "reliability": bins,
        "label_delay": label_delay(b),
    }
