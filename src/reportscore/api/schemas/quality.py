"""Online quality metrics responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reportscore.api.schemas.tasks import UTCTimestamp


class ReliabilityBin(BaseModel):
    lower: float
    upper: float
    reports: int
    mean_score: float | None = Field(description="Mean score of the bin's labelled reports (null when empty).")
    positive_rate: float | None = Field(description="Share of them actioned (null when empty).")


class DelayBucket(BaseModel):
    le_s: float | None = Field(description="Upper bound in seconds; null for the bucket above every bound.")
    reports: int


class LabelDelay(BaseModel):
    reports: int
    p50_le_s: float | None = Field(description="The bucket bound under which half of the outcomes arrived.")
    p90_le_s: float | None
    buckets: list[DelayBucket]


_EXAMPLE: dict[str, Any] = {
    "model_version": "1.0.0",
    "start": "2026-12-06T00:00:00+00:00",
    "end": "2026-12-07T00:00:00+00:00",
    "labelled": 1200,
    "positive_rate": 0.31,
    "roc_auc": 0.83,
    "pr_auc": 0.66,
    "k": 100,
    "precision_at_k": 0.74,
    "brier": 0.15,
    "ece": 0.04,
    "reliability": [{"lower": 0.0, "upper": 0.1, "reports": 300, "mean_score": 0.05, "positive_rate": 0.04}],
    "label_delay": {
        "reports": 1200,
        "p50_le_s": 3600,
        "p90_le_s": 86400,
        "buckets": [{"le_s": 60, "reports": 10}],
    },
}


class WindowMetricsOut(BaseModel):
    """One version's online quality over one window of scoring time (outcomes: actioned = 1, dismissed = 0)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]}, protected_namespaces=())

    model_version: str
    start: UTCTimestamp | None = Field(description="Start of the window (null: from the first outcome).")
    end: UTCTimestamp | None = Field(description="End of the window, exclusive (null: up to now).")
    labelled: int = Field(description="Reports with an outcome that this version scored.")
    positive_rate: float | None
    roc_auc: float | None = Field(description="Null unless both outcomes occur.")
    pr_auc: float | None = Field(description="Average precision; null without an actioned report.")
    k: int
    precision_at_k: float | None = Field(description="Null with fewer than k labelled reports.")
    brier: float | None
    ece: float | None = Field(description="Expected calibration error over the 10 reliability bins.")
    reliability: list[ReliabilityBin]
    label_delay: LabelDelay


class MetricsOut(BaseModel):
    model_name: str
    windows: list[WindowMetricsOut]
