"""Shadow set and comparison responses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from reportscore.storage.repositories.shadow import Shadow


class ShadowOut(BaseModel):
    """A version scored beside the champion on ``fraction`` of the reports."""

    version: str
    fraction: float
    started_at: datetime
    started_by: str


class ShadowList(BaseModel):
    """The shadow set after the change."""

    shadows: list[ShadowOut]

    @classmethod
    def of(cls, shadows: Sequence[Shadow]) -> ShadowList:
        return cls(
            shadows=[
                ShadowOut(version=s.version, fraction=s.fraction, started_at=s.started_at, started_by=s.started_by)
                for s in shadows
            ]
        )


class ComparisonOut(BaseModel):
    """Champion vs challenger on the reports both scored: agreement, histograms (20 bins over 0..1), and on the
    reviewed reports each model's metrics with the difference's 95% CI (paired bootstrap) and a verdict."""

    champion: str
    challenger: str
    n_reports: int
    """Reports scored by both (sums, means, extremes and histograms cover all of them)."""
    n_sampled: int
    """Reports kept for rank statistics (all, or a fixed-seed sample of REPORTSCORE_COMPARE_MAX_REPORTS)."""
    n_labelled: int
    agreement: dict[str, Any]
    histograms: dict[str, list[int]]
    labelled: dict[str, Any] | None
    verdict: str
    """``better``, ``worse`` or ``not distinguishable with n labelled reports`` (by ROC AUC)."""


class ShadowPanelRow(BaseModel):
    """One running shadow against the champion (a bounded sample; ``models compare`` has the full comparison)."""

    version: str
    fraction: float
    n_reports: int | None = None
    n_labelled: int | None = None
    pearson: float | None = None
    spearman: float | None = None
    top_10_overlap: float | None = None
    roc_auc_champion: float | None = None
    roc_auc_challenger: float | None = None
    verdict: str | None = None


class ShadowPanel(BaseModel):
    """The dashboard's shadow panel, recomputed at most every ``ttl_s`` seconds."""

    champion: str | None
    ttl_s: float
    shadows: list[ShadowPanelRow]
