"""What ``/metrics`` renders: this command's recorded metrics (every process of it, in multiprocess mode), plus the
queue gauges read from the store at scrape time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from reportscore.monitoring.metrics import JOBS_UNFINISHED, OLDEST_PENDING_AGE, STORE_UP
from reportscore.monitoring.process_files import mark_dead_processes, multiprocess_dir
from reportscore.storage.repositories.stats import QueueStats

log = logging.getLogger(__name__)


# --- exposition --------------------------------------------------------------------------------------------------
class StoreCollector(Collector):
    """The queue gauges, read from the store when scraped, at most once per ``max_age_s`` (several scrapers and
    the dashboard share one read)."""

    def __init__(self, read: Callable[[], QueueStats], *, max_age_s: float = 1.0) -> None:
        self._read = read
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._cached: tuple[float, QueueStats | None] = (-float("inf"), None)

    def stats(self) -> QueueStats | None:
        """The latest queue statistics, or None when the store could not be read."""
        with self._lock:
            at, stats = self._cached
            if time.monotonic() - at < self._max_age_s:
                return stats
            try:
                stats = self._read()
            except Exception as exc:
                log.warning("could not read queue statistics from the store", extra={"error": repr(exc)[:300]})
                stats = None
            self._cached = (time.monotonic(), stats)
            return stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        yield GaugeMetricFamily(STORE_UP.name, STORE_UP.help, value=0 if stats is None else 1)
        if stats is None:
            return
        unfinished = GaugeMetricFamily(JOBS_UNFINISHED.name, JOBS_UNFINISHED.help, labels=JOBS_UNFINISHED.labels)
        unfinished.add_metric(["PENDING"], stats.pending)
        unfinished.add_metric(["STARTED"], stats.started)
        yield unfinished
        yield GaugeMetricFamily(
            OLDEST_PENDING_AGE.name,
            OLDEST_PENDING_AGE.help,
            value=oldest_pending_age_s(stats),
            unit=OLDEST_PENDING_AGE.unit,
        )


def oldest_pending_age_s(stats: QueueStats, now: datetime | None = None) -> float:
    if stats.oldest_pending_created_at is None:
        return 0.0
    age = ((now or datetime.now(UTC)) - stats.oldest_pending_created_at).total_seconds()
    return max(age, 0.0)


class _LiveProcesses(Collector):
    """Multiprocess mode: merge the files of every process of this command, after dropping dead ones' live gauges."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._merged = MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        mark_dead_processes(Path(self._path))
        merged: Iterable[Metric] = self._merged.collect()  # type: ignore[no-untyped-call]
        return merged


class _DefaultRegistry(Collector):
    """Single-process mode: everything recorded in prometheus_client's default registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition_registry(*extra: Collector) -> CollectorRegistry:
    """What ``/metrics`` renders: this command's recorded metrics (all its processes) plus ``extra`` collectors."""
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    registry.register(_LiveProcesses(str(directory)) if directory is not None else _DefaultRegistry())
    for collector in extra:
        registry.register(collector)
    return registry
