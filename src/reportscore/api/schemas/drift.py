"""Drift responses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reportscore.api.schemas.tasks import UTCTimestamp
from reportscore.drift.service import DriftReport

Status = Literal["ok", "warn", "alert", "too_few"]
_FEATURES = ("abuse_type", "report_text_len", "profile_rating", "popularity", "lifetime_matches_created", "score")
_EXAMPLE: dict[str, Any] = {
    "model_version": "1.0.0",
    "window_s": 3600,
    "thresholds": {"warn": 0.1, "alert": 0.25, "min_reports": 200},
    "windows": [
        {
            "start": "2026-12-06T20:00:00+00:00",
            "end": "2026-12-06T21:00:00+00:00",
            "n_reports": 5000,
            "psi": dict(zip(_FEATURES, (0.0004, 0.002, 0.41, 0.001, 0.003, 0.05), strict=True)),
            "status": dict(zip(_FEATURES, ("ok", "ok", "alert", "ok", "ok", "ok"), strict=True)),
            "worst": "alert",
        }
    ],
}


class DriftThresholds(BaseModel):
    warn: float = Field(description="PSI from which a feature is reported warn (REPORTSCORE_DRIFT_PSI_WARN).")
    alert: float = Field(description="PSI from which a feature is reported alert (REPORTSCORE_DRIFT_PSI_ALERT).")
    min_reports: int = Field(description="Windows with fewer scored reports are reported too_few.")


class DriftWindow(BaseModel):
    start: UTCTimestamp
    end: UTCTimestamp
    n_reports: int = Field(description="Reports scored by the version in the window.")
    psi: dict[str, float | None] = Field(
        description="PSI against the version's reference, by feature; `score` is the score distribution."
    )
    status: dict[str, Status]
    worst: Status


class DriftOut(BaseModel):
    """Drift of one version's served reports and scores against its stored reference, per window (oldest first)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]}, protected_namespaces=())

    model_version: str
    window_s: int
    thresholds: DriftThresholds
    windows: list[DriftWindow]

    @classmethod
    def of(cls, report: DriftReport) -> DriftOut:
        return cls(
            model_version=report.model_version,
            window_s=report.window_s,
            thresholds=DriftThresholds(
                warn=report.thresholds.warn, alert=report.thresholds.alert, min_reports=report.thresholds.min_reports
            ),
            windows=[
                DriftWindow(start=w.start, end=w.end, n_reports=w.n_reports, psi=w.psi, status=w.status, worst=w.worst)
                for w in report.windows
            ],
        )
