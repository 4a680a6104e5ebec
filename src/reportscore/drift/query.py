"""Drift as the API and the CLI ask for it: a version (default: the champion), a window, a range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reportscore.drift.service import DriftReport, Thresholds, drift_report
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import models as models_repo

BUCKET_S = 3600


class DriftQueryError(ValueError):
    """The request cannot be answered as asked (unknown version, no reference)."""


class DriftWindowError(DriftQueryError):
    """The window is not a multiple of the hour the counts are kept per."""


def thresholds_of(settings: Settings) -> Thresholds:
    return Thresholds(
        warn=settings.drift_psi_warn, alert=settings.drift_psi_alert, min_reports=settings.drift_min_reports
    )


def champion_version(db: Database, settings: Settings) -> str | None:
    with db.read() as session:
        row = models_repo.champion(session, name=settings.model_name)
        return row.version if row is not None else None


def drift_for(
    db: Database,
    *,
    settings: Settings,
    version: str | None,
    window_s: int,
    since: datetime,
    until: datetime | None = None,
    served_version: str | None = None,
) -> DriftReport:
    """Drift of ``version`` (default: the registry's champion, else ``served_version``) per window."""
    if window_s < BUCKET_S or window_s % BUCKET_S:
        raise DriftWindowError(f"window {window_s} s: use a multiple of 1h (drift is counted per hour)")
    name = settings.model_name
    chosen = version or champion_version(db, settings) or served_version
    if chosen is None:
        raise DriftQueryError("no version given and no champion registered: pass a version")
    try:
        return drift_report(
            db,
            model_name=name,
            model_version=chosen,
            window_s=window_s,
            since=since,
            until=until or datetime.now(UTC),
            thresholds=thresholds_of(settings),
            bucket_s=BUCKET_S,
        )
    except LookupError as exc:
        raise DriftQueryError(str(exc)) from exc


def as_document(report: DriftReport) -> dict[str, Any]:
    """The report as JSON-able data (what ``GET /models/drift`` answers)."""
    return {
        "model_version": report.model_version,
        "window_s": report.window_s,
        "thresholds": {
            "warn": report.thresholds.warn,
            "alert": report.thresholds.alert,
            "min_reports": report.thresholds.min_reports,
        },
        "windows": [
            {
                "start": w.start.isoformat(),
                "end": w.end.isoformat(),
                "n_reports": w.n_reports,
                "psi": w.psi,
                "status": w.status,
                "worst": w.worst,
            }
            for w in report.windows
        ],
    }
