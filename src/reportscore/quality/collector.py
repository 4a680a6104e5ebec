"""The ``reportscore_model_quality`` gauges, read from the quality aggregates when ``/metrics`` is scraped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reportscore.monitoring.metrics import MODEL_QUALITY
from reportscore.quality.service import version_metrics
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories.quality import WINDOW_S

log = logging.getLogger(__name__)

GAUGED = ("labelled", "positive_rate", "roc_auc", "pr_auc", "precision_at_k", "brier", "ece")
MAX_AGE_S = 5.0
"""Scrapes and the dashboard's sampler within this share one read of the aggregates."""


class QualityCollector(Collector):
    """Every version's metrics over the last ``quality_gauge_window_s``, read at most once per ``MAX_AGE_S``."""

    def __init__(self, *, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._lock = threading.Lock()
        self._cached: tuple[float, list[tuple[str, str, float]]] = (-float("inf"), [])

    def values(self) -> list[tuple[str, str, float]]:
        """(version, metric, value) of the gauges; empty when the store could not be read."""
        with self._lock:
            at, values = self._cached
            if time.monotonic() - at < MAX_AGE_S:
                return values
            span_s = self._settings.quality_gauge_window_s // WINDOW_S * WINDOW_S
            try:
                windows = version_metrics(
                    db=self._db,
                    model_name=self._settings.model_name,
                    since=datetime.now(UTC) - timedelta(seconds=span_s),
                    k=self._settings.quality_precision_k,
                )
                values = [
                    (w.model_version, name, float(w.metrics[name]))
                    for w in windows
                    for name in GAUGED
                    if w.metrics[name] is not None
                ]
            except Exception as exc:
                log.warning("could not read quality metrics from the store", extra={"error": repr(exc)[:300]})
                values = []
            self._cached = (time.monotonic(), values)
            return values

    def rows(self) -> list[dict[str, Any]]:
        """The same values by version, for the dashboard."""
        by_version: dict[str, dict[str, Any]] = {}
        for version, name, value in self.values():
            by_version.setdefault(version, {"model_version": version})[name] = value
        return [{**row, "labelled": int(row.get("labelled", 0))} for _, row in sorted(by_version.items())]

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(MODEL_QUALITY.name, MODEL_QUALITY.help, labels=MODEL_QUALITY.labels)
        for version, name, value in self.values():
            gauge.add_metric([version, name], value)
        yield gauge
