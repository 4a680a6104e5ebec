"""The dashboard page's data (``GET /dashboard/data``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reportscore.api.schemas.tasks import UTCTimestamp

Point = float | None
"""One value of a series; null where there is nothing to show (no traffic in the window)."""


class ServingModel(BaseModel):
    name: str
    version: str
    format: str
    sha256: str
    loaded_at: UTCTimestamp


class Workers(BaseModel):
    runner: Literal["inprocess", "celery"]
    up: float | None = Field(description="Live scoring workers this process sees; null in distributed mode.")


class Queue(BaseModel):
    pending: float | None
    started: float | None
    oldest_pending_age_s: float | None
    store_up: bool | None


class Percentiles(BaseModel):
    p50: Point
    p95: Point
    p99: Point


class Now(BaseModel):
    requests_per_s: Point
    jobs_per_s: Point
    reports_per_s: Point
    job_latency_ms: Percentiles
    http_latency_ms: Percentiles


class Totals(BaseModel):
    requests: int
    jobs_success: int
    jobs_failure: int
    reports_scored: int
    http_5xx: int


class PercentileSeries(BaseModel):
    p50: list[Point]
    p95: list[Point]
    p99: list[Point]


class Series(BaseModel):
    """Aligned time series: ``t`` holds the sample times (Unix seconds), every other list one value per time."""

    t: list[float]
    requests_per_s: list[Point]
    jobs_per_s: list[Point]
    reports_per_s: list[Point]
    job_latency_ms: PercentileSeries
    http_latency_ms: PercentileSeries
    pending: list[Point]
    started: list[Point]
    oldest_pending_age_s: list[Point]
    http_4xx_per_s: list[Point]
    http_5xx_per_s: list[Point]
    job_failures_per_s: list[Point]


class AbuseTypeScores(BaseModel):
    count: int
    share: list[float] = Field(description="Share of the window's reports in each score bucket.")


class ScoreDistribution(BaseModel):
    bucket_upper: list[float]
    by_abuse_type: dict[str, AbuseTypeScores]


class RecentError(BaseModel):
    at: UTCTimestamp
    source: str = Field(description="'job' for a job that ended FAILURE, 'log …' for an error logged by this process.")
    task_id: str | None
    message: str


class QualityRow(BaseModel):
    """One version's online quality over the last ``REPORTSCORE_QUALITY_GAUGE_WINDOW_S`` of scoring."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    labelled: int
    roc_auc: float | None = None
    pr_auc: float | None = None
    precision_at_k: float | None = None
    brier: float | None = None
    ece: float | None = None


class DashboardData(BaseModel):
    """Everything the dashboard page draws, over the last ``window_s`` seconds."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "generated_at": "2026-11-27T10:00:00+00:00",
                    "mode": "embedded",
                    "interval_s": 2.0,
                    "window_s": 4.0,
                    "model": {
                        "name": "reportscore-reference",
                        "version": "1.0.0",
                        "format": "xgboost",
                        "sha256": "9f2c…",
                        "loaded_at": "2026-11-27T09:58:00+00:00",
                    },
                    "workers": {"runner": "inprocess", "up": 2},
                    "queue": {"pending": 0, "started": 0, "oldest_pending_age_s": 0.0, "store_up": True},
                    "now": {
                        "requests_per_s": 12.5,
                        "jobs_per_s": 6.0,
                        "reports_per_s": 310.0,
                        "job_latency_ms": {"p50": 3.1, "p95": 8.7, "p99": 9.7},
                        "http_latency_ms": {"p50": 2.2, "p95": 4.6, "p99": 4.9},
                    },
                    "totals": {
                        "requests": 250,
                        "jobs_success": 120,
                        "jobs_failure": 0,
                        "reports_scored": 6200,
                        "http_5xx": 0,
                    },
                    "series": {
                        "t": [1795600796.0, 1795600798.0, 1795600800.0],
                        "requests_per_s": [None, 11.0, 12.5],
                        "jobs_per_s": [None, 5.5, 6.0],
                        "reports_per_s": [None, 290.0, 310.0],
                        "job_latency_ms": {"p50": [None, 3.0, 3.1], "p95": [None, 8.1, 8.7], "p99": [None, 9.6, 9.7]},
                        "http_latency_ms": {"p50": [None, 2.1, 2.2], "p95": [None, 4.4, 4.6], "p99": [None, 4.9, 4.9]},
                        "pending": [0, 0, 0],
                        "started": [0, 1, 0],
                        "oldest_pending_age_s": [0.0, 0.0, 0.0],
                        "http_4xx_per_s": [None, 0.0, 0.5],
                        "http_5xx_per_s": [None, 0.0, 0.0],
                        "job_failures_per_s": [None, 0.0, 0.0],
                    },
                    "scores": {
                        "bucket_upper": [0.5, 1.0],
                        "by_abuse_type": {
                            "MSG": {"count": 3800, "share": [0.7, 0.3]},
                            "PRF": {"count": 2400, "share": [0.9, 0.1]},
                        },
                    },
                    "recent_errors": [
                        {
                            "at": "2026-11-27T09:59:58+00:00",
                            "source": "job",
                            "task_id": "5f0c8a1e-3f5e-4d36-9a4b-0f3a3d7f2c11",
                            "message": "scoring failed: ValueError: model returned a score that is not a finite number",
                        }
                    ],
                }
            ]
        }
    )

    generated_at: UTCTimestamp
    mode: Literal["embedded", "distributed"]
    interval_s: float = Field(description="Seconds between samples (and between the page's refreshes).")
    window_s: float = Field(description="Seconds covered by the series and the score distribution.")
    model: ServingModel
    workers: Workers
    queue: Queue
    now: Now
    totals: Totals
    series: Series
    scores: ScoreDistribution
    recent_errors: list[RecentError]
    quality: list[QualityRow] = Field(
        default_factory=list,
        description="Online quality per model version, from moderators' outcomes (the reportscore_model_quality "
        "gauges); empty before the first outcome.",
    )
