"""The drift gauges, read from the drift histograms when ``/metrics`` is scraped (at most once per ``max_age_s``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from reportscore.drift.query import drift_for
from reportscore.drift.service import DriftReport, WindowDrift
from reportscore.monitoring.metrics import DRIFT_PSI, DRIFT_PSI_THRESHOLD
from reportscore.settings import Settings
from reportscore.storage.db import Database

log = logging.getLogger(__name__)


def judged_window(report: DriftReport) -> WindowDrift | None:
    """The latest of the report's windows with enough reports to be judged."""
    for window in reversed(report.windows):
        if window.n_reports >= report.thresholds.min_reports:
            return window
    return None


class DriftCollector(Collector):
    def __init__(
        self, *, db: Database, settings: Settings, served_version: Callable[[], str], max_age_s: float = 60.0
    ) -> None:
        self._db = db
        self._settings = settings
        self._served_version = served_version
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._cached: tuple[float, str, WindowDrift | None] | None = None

    def invalidate(self) -> None:
        """Read the histograms again at the next scrape."""
        with self._lock:
            self._cached = None

    def _window(self) -> tuple[str, WindowDrift | None]:
        version = self._served_version()
        with self._lock:
            cached = self._cached
            if cached is not None and cached[1] == version and time.monotonic() - cached[0] < self._max_age_s:
                return version, cached[2]
            now = datetime.now(UTC)
            window_s = self._settings.drift_window_s
            try:
                report = drift_for(
                    self._db,
                    settings=self._settings,
                    version=version,
                    window_s=window_s,
                    since=now - timedelta(seconds=2 * window_s),
                    until=now,
                )
                window = judged_window(report)
            except Exception:  # no reference for this version, or the store is away: no drift gauges
                log.debug("drift gauges not read", exc_info=True)
                window = None
            self._cached = (time.monotonic(), version, window)
            return version, window

    def collect(self) -> Iterator[Metric]:
        thresholds = GaugeMetricFamily(DRIFT_PSI_THRESHOLD.name, DRIFT_PSI_THRESHOLD.help, labels=["level"])
        thresholds.add_metric(["warn"], self._settings.drift_psi_warn)
        thresholds.add_metric(["alert"], self._settings.drift_psi_alert)
        yield thresholds
        version, window = self._window()
        gauge = GaugeMetricFamily(DRIFT_PSI.name, DRIFT_PSI.help, labels=list(DRIFT_PSI.labels))
        for feature, value in (window.psi if window is not None else {}).items():
            if value is not None:
                gauge.add_metric([version, feature], value)
        yield gauge  # declared even without samples (no judged window yet)
