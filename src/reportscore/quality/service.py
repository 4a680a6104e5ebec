"""Reading online quality metrics: per version and window, from the hourly binned aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from reportscore.quality.metrics import Binned, summary
from reportscore.storage.db import Database
from reportscore.storage.repositories import quality as quality_repo
from reportscore.storage.repositories.quality import WINDOW_S

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidWindow(ValueError):
    """A window that is not a positive multiple of the aggregates' hour."""


@dataclass(frozen=True)
class WindowMetrics:
    model_version: str
    start: datetime | None
    end: datetime | None
    metrics: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "start": self.start, "end": self.end, **self.metrics}


def _floor(at: datetime, window_s: int) -> datetime:
    seconds = int((at - EPOCH).total_seconds()) // window_s * window_s
    return EPOCH + timedelta(seconds=seconds)


def binned(
    session: Session, *, model_name: str, version: str, since: datetime | None, until: datetime | None
) -> Binned:
    """One version's outcome counts over the hours in ``[since, until)``, as one window."""
    out = Binned()
    out.add(
        quality_repo.read_bins(
            session, model_name=model_name, model_version=version, since=since, until=until, hourly=False
        )
    )
    return out


def version_metrics(
    *,
    db: Database,
    model_name: str,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    window_s: int | None = None,
    k: int,
) -> list[WindowMetrics]:
    """Metrics of ``version`` (every version with outcomes when None) for reports scored in ``[since, until)``
    (hour resolution: an hour counts when it starts in the range), in one window or in windows of ``window_s``
    (a multiple of an hour, aligned to the Unix epoch). Windows without labelled reports are left out."""
    if window_s is not None and (window_s <= 0 or window_s % WINDOW_S):
        raise InvalidWindow(f"window must be a positive multiple of {WINDOW_S} s (the aggregates are hourly)")
    out: list[WindowMetrics] = []
    with db.read() as session:
        versions = (
            [version]
            if version is not None
            else quality_repo.versions_with_outcomes(session, model_name=model_name, since=since, until=until)
        )
        for v in versions:
            rows = quality_repo.read_bins(
                session, model_name=model_name, model_version=v, since=since, until=until, hourly=bool(window_s)
            )
            delays = quality_repo.read_delays(session, model_name=model_name, model_version=v, since=since, until=until)
            grouped: dict[datetime | None, list[quality_repo.BinRow]] = {}
            for r in rows:
                grouped.setdefault(_floor(r.window_start, window_s) if window_s else None, []).append(r)
            groups: dict[datetime | None, Binned] = {}
            for key, members in grouped.items():
                groups[key] = Binned()
                groups[key].add(members)
            for at, bucket, reports in delays:
                key = _floor(at, window_s) if window_s else None
                if key in groups:
                    groups[key].add_delays([(bucket, reports)])
            for key in sorted(groups, key=lambda x: x or EPOCH):
                start, end = (key, key + timedelta(seconds=window_s)) if key and window_s else (since, until)
                out.append(WindowMetrics(v, start, end, summary(groups[key], k=k)))
            if not groups and version is not None:
                out.append(WindowMetrics(v, since, until, summary(Binned(), k=k)))
    return out
