"""Data of the built-in dashboard page (``GET /dashboard/data``).

The page shows what this deployment's Prometheus metrics show, without a Prometheus: a sampler reads the same
registry ``/metrics`` renders every ``SAMPLE_INTERVAL_S`` and keeps ``HISTORY_S`` of snapshots in memory; rates and
latency percentiles are computed from consecutive snapshots the way PromQL's ``rate`` and ``histogram_quantile``
do. In embedded mode that is everything (scoring runs in the API process). In distributed mode the API processes
see their own HTTP and ``POST /score`` metrics and the queue (read from the store), while queued-job metrics are
recorded by the workers and are seen in Prometheus/Grafana.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample

from reportscore.scoring.features import ABUSE_TYPES
from reportscore.storage.repositories.stats import FailedJob

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 2.0
HISTORY_S = 600.0
RATE_WINDOW_S = 10.0
QUANTILE_WINDOW_S = 30.0
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
SCORING_ROUTES = frozenset({("POST", "/predict"), ("POST", "/submit"), ("POST", "/score"), ("GET", "/task/{task_id}")})
"""Requests counted as traffic (the monitoring and health routes are not)."""
SUBMIT_ROUTES = frozenset({("POST", "/predict"), ("POST", "/submit"), ("POST", "/score")})
"""Requests whose latency the page charts (a long-poll's latency is its wait)."""
UNCOUNTED_ROUTE_PREFIXES = ("/metrics", "/dashboard", "unmatched")
"""Requests left out of the page's error rates: its own polling, and paths no route serves (scanners, favicons)."""

Buckets = tuple[tuple[float, float], ...]
"""A histogram as ``((upper bound, cumulative count), ...)``, ascending, ending with +Inf."""


@dataclass(frozen=True)
class Snapshot:
    """The counters the page needs, at one instant."""

    at: float
    requests: float = 0.0
    http_4xx: float = 0.0
    http_5xx: float = 0.0
    http_latency: Buckets = ()
    jobs_success: float = 0.0
    jobs_failure: float = 0.0
    job_latency: Buckets = ()
    reports_scored: float = 0.0
    scores: Mapping[str, Buckets] = field(default_factory=dict)
    pending: float | None = None
    started: float | None = None
    oldest_pending_age_s: float | None = None
    store_up: bool | None = None
    workers_up: float | None = None


class _Reader:
    """Folds registry samples into a ``Snapshot`` (histograms summed over their other labels)."""

    def __init__(self) -> None:
        self.counters: dict[str, float] = defaultdict(float)
        self.gauges: dict[str, float] = {}
        self.http_latency: dict[float, float] = defaultdict(float)
        self.job_latency: dict[float, float] = defaultdict(float)
        self.scores: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, s: Sample) -> None:
        labels = s.labels
        route_key = (labels.get("method", ""), labels.get("route", ""))
        if s.name == "reportscore_http_requests_total":
            if route_key in SCORING_ROUTES:
                self.counters["requests"] += s.value
            if not route_key[1].startswith(UNCOUNTED_ROUTE_PREFIXES):
                status = labels.get("status", "")
                if status.startswith("4"):
                    self.counters["http_4xx"] += s.value
                elif status.startswith("5"):
                    self.counters["http_5xx"] += s.value
        elif s.name == "reportscore_http_request_duration_seconds_bucket" and route_key in SUBMIT_ROUTES:
            self.http_latency[float(labels["le"])] += s.value
        elif s.name == "reportscore_jobs_finished_total":
            self.counters[f"jobs_{labels.get('status', '').lower()}"] += s.value
        elif s.name == "reportscore_job_latency_seconds_bucket":
            self.job_latency[float(labels["le"])] += s.value
        elif s.name == "reportscore_model_batch_size_reports_sum":
            self.counters["reports_scored"] += s.value
        elif s.name == "reportscore_report_score_bucket":
            self.scores[labels.get("abuse_type", "")][float(labels["le"])] += s.value
        elif s.name == "reportscore_jobs_unfinished":
            self.gauges[labels.get("status", "").lower()] = s.value
        elif s.name == "reportscore_queue_oldest_pending_age_seconds":
            self.gauges["oldest_pending_age_s"] = s.value
        elif s.name == "reportscore_store_up":
            self.gauges["store_up"] = s.value
        elif s.name == "reportscore_worker_up":
            self.gauges["workers_up"] = self.gauges.get("workers_up", 0.0) + s.value

    def snapshot(self, at: float) -> Snapshot:
        store_up = self.gauges.get("store_up")
        return Snapshot(
            at=at,
            requests=self.counters["requests"],
            http_4xx=self.counters["http_4xx"],
            http_5xx=self.counters["http_5xx"],
            http_latency=_sorted(self.http_latency),
            jobs_success=self.counters["jobs_success"],
            jobs_failure=self.counters["jobs_failure"],
            job_latency=_sorted(self.job_latency),
            reports_scored=self.counters["reports_scored"],
            scores={kind: _sorted(buckets) for kind, buckets in self.scores.items()},
            pending=self.gauges.get("pending"),
            started=self.gauges.get("started"),
            oldest_pending_age_s=self.gauges.get("oldest_pending_age_s"),
            store_up=None if store_up is None else store_up > 0,
            workers_up=self.gauges.get("workers_up"),
        )


def _sorted(buckets: Mapping[float, float]) -> Buckets:
    return tuple(sorted(buckets.items()))


def take_snapshot(registry: CollectorRegistry, *, at: float) -> Snapshot:
    reader = _Reader()
    for family in registry.collect():
        for sample in family.samples:
            reader.add(sample)
    return reader.snapshot(at)


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """PromQL's ``histogram_quantile`` on cumulative buckets: linear interpolation inside the bucket holding the
    q-th observation; the last finite bound when it falls in +Inf; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(upper):
                return lower
            inside = cumulative - below
            if inside <= 0:
                return upper
            return lower + (upper - lower) * (rank - below) / inside
        lower, below = upper, cumulative
    return lower


def _delta(newer: Buckets, older: Buckets) -> Buckets:
    before = dict(older)
    return tuple((upper, max(count - before.get(upper, 0.0), 0.0)) for upper, count in newer)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class _Series:
    """Per-point values over the snapshot history."""

    def __init__(self, snapshots: Sequence[Snapshot]) -> None:
        self.snaps = snapshots
        self.times = [s.at for s in snapshots]

    def _start(self, i: int, window_s: float) -> int | None:
        if i == 0:
            return None
        return min(bisect.bisect_left(self.times, self.times[i] - window_s), i - 1)

    def rate(self, value: Callable[[Snapshot], float]) -> list[float | None]:
        out: list[float | None] = []
        for i, snap in enumerate(self.snaps):
            j = self._start(i, RATE_WINDOW_S)
            if j is None:
                out.append(None)
                continue
            older = self.snaps[j]
            elapsed = snap.at - older.at
            out.append(_round(max(value(snap) - value(older), 0.0) / elapsed, 3) if elapsed > 0 else None)
        return out

    def quantiles(self, buckets: Callable[[Snapshot], Buckets]) -> dict[str, list[float | None]]:
        out: dict[str, list[float | None]] = {name: [] for name, _ in QUANTILES}
        for i, snap in enumerate(self.snaps):
            j = self._start(i, QUANTILE_WINDOW_S)
            window = _delta(buckets(snap), buckets(self.snaps[j])) if j is not None else ()
            for name, q in QUANTILES:
                seconds = histogram_quantile(q, window)
                out[name].append(_round(None if seconds is None else seconds * 1000, 3))
        return out

    def gauge(self, value: Callable[[Snapshot], float | None]) -> list[float | None]:
        return [_round(value(s), 3) for s in self.snaps]


def score_distribution(first: Snapshot, last: Snapshot, bounds: Sequence[float]) -> dict[str, Any]:
    """Share of reports per score bucket, by abuse type, between two snapshots."""
    by_type: dict[str, dict[str, Any]] = {}
    for kind in sorted(set(ABUSE_TYPES) | set(last.scores)):
        window = dict(_delta(last.scores.get(kind, ()), first.scores.get(kind, ())))
        cumulative = [window.get(float(b), 0.0) for b in bounds]
        counts = [max(c - p, 0.0) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
        total = sum(counts)
        by_type[kind] = {
            "count": int(total),
            "share": [round(c / total, 4) if total else 0.0 for c in counts],
        }
    return {"bucket_upper": list(bounds), "by_abuse_type": by_type}


@dataclass(frozen=True)
class ErrorEntry:
    at: datetime
    source: str
    message: str
    task_id: str | None = None


class RecentErrors(logging.Handler):
    """Keeps the last ERROR log records of this process for the page's "recent errors" table."""

    def __init__(self, capacity: int = 20) -> None:
        super().__init__(level=logging.ERROR)
        self._entries: deque[ErrorEntry] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            error = getattr(record, "error", None)
            if error:
                message = f"{message}: {error}"
            elif record.exc_info and record.exc_info[1] is not None:
                message = f"{message}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            task_id = getattr(record, "task_id", None)
            self._entries.append(
                ErrorEntry(
                    at=datetime.fromtimestamp(record.created, UTC),
                    source=f"log {record.name}",
                    message=message[:500],
                    task_id=str(task_id) if task_id else None,
                )
            )
        except Exception:  # a log handler must never raise into the code that logged
            self.handleError(record)

    def entries(self) -> list[ErrorEntry]:
        return list(self._entries)


def recent_errors(failures: Iterable[FailedJob], logged: Iterable[ErrorEntry], *, limit: int) -> list[dict[str, Any]]:
    """Failed jobs from the store and error log lines of this process, newest first, one line per task."""
    entries = [
        ErrorEntry(
            at=f.finished_at or f.created_at, source="job", message=(f.error or "failed")[:500], task_id=f.task_id
        )
        for f in failures
    ]
    seen = {e.task_id for e in entries}
    entries += [e for e in logged if e.task_id is None or e.task_id not in seen]
    entries.sort(key=lambda e: e.at, reverse=True)
    return [{"at": e.at, "source": e.source, "task_id": e.task_id, "message": e.message} for e in entries[:limit]]


def build(
    snapshots: Sequence[Snapshot],
    *,
    mode: str,
    runner: str,
    model: Mapping[str, Any],
    errors: list[dict[str, Any]],
    score_bounds: Sequence[float],
    quality: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``GET /dashboard/data`` (shape: ``reportscore.api.schemas.monitoring.DashboardData``)."""
    if not snapshots:
        raise ValueError("no snapshot yet")
    series = _Series(snapshots)
    last = snapshots[-1]
    job_latency = series.quantiles(lambda s: s.job_latency)
    http_latency = series.quantiles(lambda s: s.http_latency)
    out_series: dict[str, Any] = {
        "t": [round(t, 3) for t in series.times],
        "requests_per_s": series.rate(lambda s: s.requests),
        "jobs_per_s": series.rate(lambda s: s.jobs_success + s.jobs_failure),
        "reports_per_s": series.rate(lambda s: s.reports_scored),
        "job_latency_ms": job_latency,
        "http_latency_ms": http_latency,
        "pending": series.gauge(lambda s: s.pending),
        "started": series.gauge(lambda s: s.started),
        "oldest_pending_age_s": series.gauge(lambda s: s.oldest_pending_age_s),
        "http_4xx_per_s": series.rate(lambda s: s.http_4xx),
        "http_5xx_per_s": series.rate(lambda s: s.http_5xx),
        "job_failures_per_s": series.rate(lambda s: s.jobs_failure),
    }

    def latest(values: list[float | None]) -> float | None:
        return values[-1] if values else None

    return {
        "generated_at": datetime.fromtimestamp(last.at, UTC),
        "mode": mode,
        "interval_s": SAMPLE_INTERVAL_S,
        "window_s": round(last.at - snapshots[0].at, 3),
        "model": dict(model),
        "workers": {"runner": runner, "up": last.workers_up},
        "queue": {
            "pending": last.pending,
            "started": last.started,
            "oldest_pending_age_s": _round(last.oldest_pending_age_s, 3),
            "store_up": last.store_up,
        },
        "now": {
            "requests_per_s": latest(out_series["requests_per_s"]),
            "jobs_per_s": latest(out_series["jobs_per_s"]),
            "reports_per_s": latest(out_series["reports_per_s"]),
            "job_latency_ms": {name: latest(values) for name, values in job_latency.items()},
            "http_latency_ms": {name: latest(values) for name, values in http_latency.items()},
        },
        "totals": {
            "requests": int(last.requests),
            "jobs_success": int(last.jobs_success),
            "jobs_failure": int(last.jobs_failure),
            "reports_scored": int(last.reports_scored),
            "http_5xx": int(last.http_5xx),
        },
        "series": out_series,
        "scores": score_distribution(snapshots[0], last, score_bounds),
        "recent_errors": errors,
        "quality": quality or [],
    }


class Sampler:
    """Takes a snapshot of ``registry`` every ``interval_s`` and keeps the last ``history_s`` of them."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        interval_s: float = SAMPLE_INTERVAL_S,
        history_s: float = HISTORY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._interval_s = interval_s
        self._history_s = history_s
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshots: deque[Snapshot] = deque()
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> Snapshot:
        snap = take_snapshot(self._registry, at=self._clock())
        with self._lock:
            self._snapshots.append(snap)
            while self._snapshots and self._snapshots[0].at < snap.at - self._history_s:
                self._snapshots.popleft()
        return snap

    def sample_if_older_than(self, max_age_s: float) -> None:
        with self._lock:
            last = self._snapshots[-1].at if self._snapshots else None
        if last is None or self._clock() - last > max_age_s:
            self.sample()

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            return list(self._snapshots)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.sample)
            except Exception:
                log.warning("dashboard sampling failed", exc_info=True)
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dashboard-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
