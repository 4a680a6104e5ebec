"""Every Prometheus metric of reportscore, declared once here with its help text and unit.

``docs/metrics.md`` lists them (a test fails when a metric is missing there or the page names one that does not
exist). Processes record through the small ``observe_*`` functions below. ``serve`` and ``worker`` run in
Prometheus multiprocess mode (see ``monitoring/multiproc.py``); everything else (tests, one-off scripts) records in
the default in-process registry. ``monitoring/exposition.py`` builds what ``/metrics`` renders in either case.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Gauge, Histogram

from reportscore.monitoring.process_files import mark_this_process_dead

log = logging.getLogger(__name__)

MetricType = Literal["counter", "gauge", "histogram"]
Source = Literal["queue", "sync"]
"""Where a model call came from: ``queue`` = queued jobs (``POST /predict``, ``/submit``); ``sync`` = ``/score``."""


@dataclass(frozen=True)
class MetricInfo:
    """A metric as PromQL sees it: ``name`` is the queried name (counters end in ``_total``)."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...]
    unit: str
    recorded_by: Literal["process", "store"]


DECLARED: dict[str, MetricInfo] = {}
"""Every metric family reportscore exports, by queried name."""


def _declare(info: MetricInfo) -> MetricInfo:
    if info.name in DECLARED:
        raise ValueError(f"metric {info.name} declared twice")
    DECLARED[info.name] = info
    return info


def _counter(name: str, help_text: str, labels: Sequence[str], unit: str = "") -> Counter:
    _declare(MetricInfo(f"{name}_total", "counter", help_text, tuple(labels), unit, "process"))
    return Counter(name, help_text, labels, unit=unit)


def _histogram(name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float], unit: str = "") -> Histogram:
    _declare(MetricInfo(name, "histogram", help_text, tuple(labels), unit, "process"))
    return Histogram(name, help_text, labels, unit=unit, buckets=buckets)


def _gauge(name: str, help_text: str, labels: Sequence[str], unit: str = "") -> Gauge:
    """A gauge each process sets for itself; the exported value is the sum over live processes."""
    _declare(MetricInfo(name, "gauge", help_text, tuple(labels), unit, "process"))
    return Gauge(name, help_text, labels, unit=unit, multiprocess_mode="livesum")


def _from_store(name: str, help_text: str, labels: Sequence[str] = (), unit: str = "") -> MetricInfo:
    """A gauge read from the store when scraped (by API processes), not recorded by a process."""
    return _declare(MetricInfo(name, "gauge", help_text, tuple(labels), unit, "store"))


HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS_S = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0),
)
PREDICT_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))

# --- HTTP (every API process) -----------------------------------------------------------------------------------
HTTP_REQUESTS = _counter(
    "reportscore_http_requests",
    "HTTP requests answered, by method, route template (/task/{task_id}, never the raw path; 'unmatched' when no "
    "route matched) and status code.",
    ("method", "route", "status"),
)
HTTP_REQUEST_DURATION = _histogram(
    "reportscore_http_request_duration_seconds",
    "Time from receiving an HTTP request to the end of its response, by method, route template and status code. "
    "Includes long-poll waits (GET /task/{task_id}?wait=).",
    ("method", "route", "status"),
    HTTP_BUCKETS_S,
    unit="seconds",
)

# --- jobs (recorded by the process that writes the result: embedded API process or Celery worker) -----------------
JOBS_FINISHED = _counter(
    "reportscore_jobs_finished",
    "Queued jobs (POST /predict, /submit) that reached a final status (SUCCESS or FAILURE), counted once, by the "
    "process that committed it.",
    ("status",),
)
JOB_LATENCY = _histogram(
    "reportscore_job_latency_seconds",
    "End-to-end latency of a queued job: from its creation (before the 202) to the commit of its final status.",
    ("status",),
    JOB_BUCKETS_S,
    unit="seconds",
)

# --- the model ---------------------------------------------------------------------------------------------------
PREDICT_DURATION = _histogram(
    "reportscore_model_predict_duration_seconds",
    "Duration of one model call (feature encoding and predict) for a micro-batch, by model version and source "
    "(queue: queued jobs; sync: POST /score).",
    ("model_version", "source"),
    PREDICT_BUCKETS_S,
    unit="seconds",
)
BATCH_SIZE = _histogram(
    "reportscore_model_batch_size_reports",
    "Reports scored in one model call, by model version and source. Its _sum counts every report scored.",
    ("model_version", "source"),
    BATCH_BUCKETS,
    unit="reports",
)
PREDICT_ERRORS = _counter(
    "reportscore_model_predict_errors",
    "Model calls that raised or returned something other than one finite score in 0..1 per report.",
    ("model_version", "source"),
)
REPORT_SCORE = _histogram(
    "reportscore_report_score",
    "Scores given to reports (0..1, buckets 0.05 wide), by abuse type and model version: the model's output "
    "distribution, for drift and shadow comparisons.",
    ("abuse_type", "model_version"),
    SCORE_BUCKETS,
)
SCORE_CACHE_HITS = _counter(
    "reportscore_score_cache_hits",
    "Reports whose score came from the score cache instead of the model, by tier (memory: this process; redis: "
    "shared). Hit ratio: hits / (hits + misses).",
    ("tier",),
)
SCORE_CACHE_MISSES = _counter(
    "reportscore_score_cache_misses",
    "Reports the score cache did not hold (scored by the model, then stored).",
    (),
)
SCORE_CACHE_ENTRIES = _gauge(
    "reportscore_score_cache_entries",
    "Scores held by the in-process score caches (summed over live processes).",
    (),
)
SCORE_CACHE_REDIS_ERRORS = _counter(
    "reportscore_score_cache_redis_errors",
    "Redis calls of the score cache that failed (op: get or set); scoring went on without the Redis tier.",
    ("op",),
)
MODEL_SERVING = _gauge(
    "reportscore_model_serving",
    "Processes serving this model version (each API process and each worker process counts 1; 0 once it moved on).",
    ("model_name", "model_version"),
)

# --- shadow challengers (scored off the answer's path, after the champion's results are committed) -------------
SHADOW_REPORTS = _counter(
    "reportscore_shadow_reports",
    "Reports a shadow version handled, by outcome: scored (its score stored); failed (its model call or its write "
    "failed: the champion's answer is unaffected).",
    ("model_version", "outcome"),
)
SHADOW_SKIPPED = _counter(
    "reportscore_shadow_skipped_reports",
    "Reports the shadows did not score because they fell behind (the process's shadow backlog was full).",
    (),
)

# --- workers -----------------------------------------------------------------------------------------------------
WORKER_UP = _gauge(
    "reportscore_worker_up",
    "Live scoring workers: scoring threads of the embedded API process (runner=inprocess) or Celery pool processes "
    "of this worker (runner=celery).",
    ("runner",),
)

RECONCILER_REPUBLISHED = _counter(
    "reportscore_reconciler_republished_jobs",
    "Jobs the reconciler handed to the broker again, by outcome: published (a PENDING job whose message may be lost, "
    "or a STARTED job whose lease ran out, i.e. whose worker died or was cut off); unsent (the broker did not take "
    "them: tried again at the next pass).",
    ("outcome",),
)
LEASE_RENEWALS = _counter(
    "reportscore_job_lease_renewals",
    "Lease renewals of jobs being scored (the heartbeat of a Celery pool process), per job, by outcome: renewed; "
    "lost (the job was no longer held by this attempt: finished, or claimed again after the lease ran out, so this "
    "attempt's result is not written); failed (the store did not answer; counted once per renewal round).",
    ("outcome",),
)

# --- callbacks (recorded by the API process that made the delivery) ---------------------------------------------
CALLBACK_DELIVERIES = _counter(
    "reportscore_callback_deliveries",
    "Callback deliveries made, by outcome: delivered (a 2xx answer), retry (failed, will be tried again), failed "
    "(failed for the last allowed time: the callback is given up).",
    ("outcome",),
)

# --- model quality (online metrics from moderators' outcomes; the automatic rollback) ---------------------------
AUTO_ROLLBACKS = _counter(
    "reportscore_model_auto_rollbacks",
    "Champions rolled back by the automatic rollback policy, by model name and trigger: the quality metric compared "
    "(its online quality fell below the previous champion's) or score_psi (its scores drifted past the alert "
    "threshold); counted by the API process that wrote the rollback.",
    ("model_name", "metric"),
)
MODEL_QUALITY = _from_store(
    "reportscore_model_quality",
    "Online quality of each model version with labelled reports scored in the last REPORTSCORE_QUALITY_GAUGE_WINDOW_S, "
    "from moderators' outcomes (actioned = 1, dismissed = 0), by version and metric: labelled, positive_rate, "
    "roc_auc, pr_auc, precision_at_k, brier, ece (a metric without a value, e.g. AUC with one label only, is left "
    "out).",
    ("model_version", "metric"),
)

# --- the queue, read from the store at scrape time (API processes only; equal on every API instance) -------------
JOBS_UNFINISHED = _from_store(
    "reportscore_jobs_unfinished",
    "Jobs accepted and not finished, by status: PENDING (the queue depth) or STARTED (being scored).",
    ("status",),
)
OLDEST_PENDING_AGE = _from_store(
    "reportscore_queue_oldest_pending_age_seconds",
    "Age of the oldest PENDING job (0 when none is pending).",
    unit="seconds",
)
DRIFT_PSI = _from_store(
    "reportscore_drift_psi",
    "PSI of each feature and of the score (feature=score) of the served version against its reference, over the "
    "latest drift window with enough scored reports (REPORTSCORE_DRIFT_MIN_REPORTS).",
    ("model_version", "feature"),
)
DRIFT_PSI_THRESHOLD = _from_store(
    "reportscore_drift_psi_threshold",
    "The configured PSI thresholds (level=warn or alert), for alert rules to compare reportscore_drift_psi with.",
    ("level",),
)
STORE_UP = _from_store(
    "reportscore_store_up",
    "1 when the last read of the queue gauges from the store succeeded, 0 when it failed (the other store gauges "
    "are then left out).",
)


# --- recording ---------------------------------------------------------------------------------------------------
P = ParamSpec("P")
CallbackOutcome = Literal["delivered", "retry", "failed"]
_failure_logged_at = -float("inf")


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """Recording a metric must never fail a request or a job (a full disk under the multiprocess directory, a bug):
    log it, at most once a minute, and carry on."""

    @functools.wraps(record)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        global _failure_logged_at
        try:
            record(*args, **kwargs)
        except Exception:
            if time.monotonic() - _failure_logged_at > 60:
                _failure_logged_at = time.monotonic()
                log.warning("could not record a metric", extra={"recorder": record.__name__}, exc_info=True)

    return guarded


_http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
"""The labelled counter and histogram of each (method, route, status) seen: ``labels()`` costs more than the
increment. Bounded: routes are templates and statuses few."""


@_never_raises
def observe_http(*, method: str, route: str, status: int, seconds: float) -> None:
    children = _http_children.get((method, route, status))
    if children is None:
        code = str(status)
        children = _http_children[(method, route, status)] = (
            HTTP_REQUESTS.labels(method, route, code),
            HTTP_REQUEST_DURATION.labels(method, route, code),
        )
    children[0].inc()
    children[1].observe(seconds)


def observe_many(histogram: Histogram, values: npt.ArrayLike) -> None:
    """``histogram.observe(v)`` for every value, in one vectorized pass: one increment per bucket, not per value.

    Scoring a micro-batch of thousands of reports must not cost thousands of locked writes. Relies on the bucket
    layout of ``prometheus_client.Histogram`` (``_upper_bounds`` ending in +Inf, one non-cumulative value per
    bucket, and ``_sum``); a test checks the result equals observing one by one.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[~np.isnan(array)]
    if array.size == 0:
        return
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, array, side="left"), minlength=bounds.size)
    for index in np.flatnonzero(counts):
        histogram._buckets[int(index)].inc(float(counts[index]))
    histogram._sum.inc(float(array.sum()))


@_never_raises
def observe_predict(
    *,
    model_name: str,
    model_version: str,
    source: Source,
    seconds: float,
    abuse_types: Sequence[object],
    scores: npt.NDArray[np.float64],
) -> None:
    """One successful model call: its duration, its batch size and the scores it gave, by abuse type."""
    PREDICT_DURATION.labels(model_version, source).observe(seconds)
    BATCH_SIZE.labels(model_version, source).observe(len(scores))
    if len(abuse_types) == len(scores):
        kinds = set(abuse_types)
        if len(kinds) == 1:
            observe_many(REPORT_SCORE.labels(str(kinds.pop()), model_version), scores)
        else:
            column = np.asarray(abuse_types, dtype=object)
            for kind in kinds:
                observe_many(REPORT_SCORE.labels(str(kind), model_version), scores[column == kind])
    note_serving_model(model_name=model_name, model_version=model_version)


_score_cache_hits: dict[str, Counter] = {}
"""Label children by tier, looked up once: a cache hit costs about as much as this bookkeeping."""


@_never_raises
def observe_score_cache(*, hits: dict[str, int], misses: int) -> None:
    """One lookup of a model call's rows in the score cache: hits by tier, and misses."""
    for tier, n in hits.items():
        if n:
            child = _score_cache_hits.get(tier)
            if child is None:
                child = _score_cache_hits[tier] = SCORE_CACHE_HITS.labels(tier)
            child.inc(n)
    if misses:
        SCORE_CACHE_MISSES.inc(misses)


@_never_raises
def set_score_cache_entries(n: int) -> None:
    SCORE_CACHE_ENTRIES.set(n)


@_never_raises
def observe_score_cache_redis_error(op: str) -> None:
    SCORE_CACHE_REDIS_ERRORS.labels(op).inc()


@_never_raises
def observe_predict_error(*, model_version: str, source: Source) -> None:
    PREDICT_ERRORS.labels(model_version, source).inc()


@_never_raises
def observe_jobs_finished(status: Literal["SUCCESS", "FAILURE"], latencies_s: Sequence[float]) -> None:
    """Jobs that just reached ``status``, with their end-to-end latencies (negative clock skew counts as 0)."""
    if not latencies_s:
        return
    latencies = np.maximum(np.asarray(latencies_s, dtype=np.float64), 0.0)
    JOBS_FINISHED.labels(status).inc(len(latencies))
    observe_many(JOB_LATENCY.labels(status), latencies)


_serving_lock = threading.Lock()
_serving: tuple[str, str] | None = None


@_never_raises
def note_serving_model(*, model_name: str, model_version: str) -> None:
    """This process now serves ``model_version`` (called at load and by every model call, so a swap shows up)."""
    global _serving
    current = (model_name, model_version)
    if _serving == current:
        return
    with _serving_lock:
        if _serving is not None and _serving != current:
            MODEL_SERVING.labels(*_serving).set(0)
        MODEL_SERVING.labels(*current).set(1)
        _serving = current


@_never_raises
def set_workers_up(runner: Literal["inprocess", "celery"], count: int) -> None:
    WORKER_UP.labels(runner).set(count)


@_never_raises
def worker_process_started(*, model_name: str, model_version: str) -> None:
    """A Celery pool process is ready to score (``worker_process_init``)."""
    set_workers_up("celery", 1)
    note_serving_model(model_name=model_name, model_version=model_version)


@_never_raises
def worker_process_stopping() -> None:
    """A Celery pool process exits cleanly (``worker_process_shutdown``): it no longer counts as live."""
    set_workers_up("celery", 0)
    mark_this_process_dead()


@_never_raises
def observe_reconciler_pass(*, published: int, unsent: int) -> None:
    if published:
        RECONCILER_REPUBLISHED.labels("published").inc(published)
    if unsent:
        RECONCILER_REPUBLISHED.labels("unsent").inc(unsent)


@_never_raises
def observe_lease_renewals(*, renewed: int = 0, lost: int = 0, failed: int = 0) -> None:
    for outcome, count in (("renewed", renewed), ("lost", lost), ("failed", failed)):
        if count:
            LEASE_RENEWALS.labels(outcome).inc(count)


@_never_raises
def observe_callback_delivery(outcome: CallbackOutcome) -> None:
    CALLBACK_DELIVERIES.labels(outcome=outcome).inc()


@_never_raises
def observe_shadow(*, model_version: str, scored: int = 0, failed: int = 0) -> None:
    if scored:
        SHADOW_REPORTS.labels(model_version, "scored").inc(scored)
    if failed:
        SHADOW_REPORTS.labels(model_version, "failed").inc(failed)


@_never_raises
def observe_shadow_skipped(reports: int) -> None:
    SHADOW_SKIPPED.inc(reports)


@_never_raises
def observe_auto_rollback(*, model_name: str, metric: str) -> None:
    AUTO_ROLLBACKS.labels(model_name=model_name, metric=metric).inc()
