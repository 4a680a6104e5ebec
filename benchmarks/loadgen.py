"""The load generator: asyncio, one process (pinned to one core by ``benchmarks.run``).

Two flows:

- ``async``: ``POST /predict`` -> ``202 {task_id}`` -> ``GET /task/{id}?wait=10`` (repeated while ``202``) ->
  ``200 {"status": "SUCCESS", "score": [...]}``; latency = submit sent -> result received.
- ``sync``: ``POST /score`` -> ``200 {"score": [...]}``.

Two arrival models:

- closed loop: ``C`` clients, each doing one job after another for the whole run;
- open loop: Poisson arrivals at a fixed offered rate, whatever the service does, so queueing shows up in the tail.
  Latency is measured from the *scheduled* arrival (no coordinated omission when the generator itself falls
  behind); the achieved rate is reported next to the offered one.

Only jobs that *finish* inside the measurement window (after the warm-up) count (closed loop); in open loop, jobs
*scheduled* inside the window count, and the run waits (bounded) for them to finish. Every response's scores are
checked against the in-process model (``check_every``), a mismatch counts as an error.

HTTP clients: ``raw`` (default) is a minimal keep-alive HTTP/1.1 client on asyncio streams, a few microseconds per
request, so the generator's single core is not the bottleneck; ``httpx`` uses ``httpx2.AsyncClient`` with a
connection pool sized to the concurrency (roughly 5-10x more CPU per request: use it to cross-check, not to find a
ceiling).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from benchmarks.http_clients import JOB_TIMEOUT_S, ClientKind, HttpClient, make_client
from benchmarks.resources import ResourceSampler, self_cpu_s
from benchmarks.stats import latency_summary

Flow = Literal["async", "sync", "sync-nopersist", "v2"]
"""``sync-nopersist``: ``POST /score?persist=false``; ``v2``: a V2 inference request (the MLServer anchor)."""
ArrivalModel = Literal["closed", "open"]

LONG_POLL_WAIT_S = 10
SCORE_TOLERANCE = 1e-6


# --- request bodies -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    """One pre-encoded request body and the scores the model must return for it (``None``: any constant)."""

    payload: bytes
    n_reports: int
    expected: tuple[float, ...] | None


def make_bodies(reports: Sequence[dict[str, Any]], batch: int, expected: Sequence[float] | None) -> list[Body]:
    """Cut ``reports`` into bodies of ``batch`` reports, with their expected scores."""
    bodies = []
    for start in range(0, len(reports) - batch + 1, batch):
        chunk = list(reports[start : start + batch])
        exp = tuple(float(x) for x in expected[start : start + batch]) if expected is not None else None
        bodies.append(Body(orjson.dumps(chunk), batch, exp))
    return bodies


def v2_scores(answer: Any) -> list[float] | None:
    """The positive class's probabilities of a V2 inference answer's ``predict_proba`` output (shape [n, 2])."""
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    output = next((o for o in outputs or [] if isinstance(o, dict) and o.get("name") == "predict_proba"), None)
    if output is None:
        return None
    shape, data = output.get("shape"), output.get("data")
    if not isinstance(shape, list) or len(shape) != 2 or not isinstance(data, list) or len(data) != shape[0] * 2:
        return None
    return [float(x) for x in data[1::2]]


def check_scores(body: Body, scores: Any) -> bool:
    """The response's scores match the model (to ``SCORE_TOLERANCE``), or, for the floor, are one constant per
    report."""
    if not isinstance(scores, list) or len(scores) != body.n_reports:
        return False
    if body.expected is None:
        return all(isinstance(s, float | int) for s in scores)
    return all(
        isinstance(s, float | int) and abs(s - e) <= SCORE_TOLERANCE for s, e in zip(scores, body.expected, strict=True)
    )


# --- one job ------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    start: float  # submit sent (closed loop) or scheduled arrival (open loop), monotonic seconds
    end: float
    error: str | None  # None: success with the right scores
    n_reports: int


async def run_job(
    client: HttpClient,
    flow: Flow,
    body: Body,
    sync_path: str,
    check: bool,
    timings: list[dict[str, Any]] | None = None,
) -> str | None:
    """Do one job; ``None`` on success, else an error key such as ``"submit 503"`` or ``"score mismatch"``.

    When ``check`` is set, the scores are compared with the model and the service's own ``timings`` (if its
    answer has them) are appended to ``timings``."""
    if flow != "async":
        status, data = await client.request("POST", sync_path, body.payload)
        if status != 200:
            return f"score {status}"
        result = orjson.loads(data)
        if flow == "v2":
            result = {"score": v2_scores(result)}
    else:
        status, data = await client.request("POST", "/predict", body.payload)
        if status != 202:
            return f"submit {status}"
        task_id = orjson.loads(data)["task_id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            status, data = await client.request("GET", f"/task/{task_id}?wait={LONG_POLL_WAIT_S}")
            if status == 200:
                result = orjson.loads(data)
                if result.get("status") != "SUCCESS":
                    return f"task {result.get('status')}"
                break
            if status != 202:
                return f"poll {status}"
            if time.monotonic() > deadline:
                return "job timeout"
    if check:
        if not check_scores(body, result.get("score")):
            return "score mismatch"
        if timings is not None and isinstance(result.get("timings"), dict):
            timings.append(result["timings"])
    return None


async def timed_job(
    client: HttpClient,
    flow: Flow,
    body: Body,
    sync_path: str,
    check: bool,
    start: float | None = None,
    timings: list[dict[str, Any]] | None = None,
) -> Outcome:
    t0 = time.monotonic() if start is None else start
    try:
        error = await asyncio.wait_for(run_job(client, flow, body, sync_path, check, timings), JOB_TIMEOUT_S)
    except TimeoutError:
        error = "job timeout"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, KeyError) as exc:
        error = f"client {type(exc).__name__}"
    except Exception as exc:  # httpx's transport errors and anything unexpected: count, do not crash the run
        error = f"client {type(exc).__name__}"
    return Outcome(t0, time.monotonic(), error, body.n_reports)


# --- a workload ---------------------------------------------------------------------------------------------


@dataclass
class LoadSpec:
    name: str
    base_url: str
    flow: Flow
    bodies: list[Body]
    concurrency: int = 8  # closed loop: clients; open loop: the cap on jobs in flight
    arrival: ArrivalModel = "closed"
    rate: float = 0.0  # open loop: offered jobs/s
    duration_s: float = 10.0
    warmup_s: float = 2.0
    sync_path: str = "/score"
    check_every: int = 1  # check the scores of every n-th job
    client: ClientKind = "raw"
    service_pids: list[int] = field(default_factory=list)
    drain_s: float = 30.0
    seed: int = 0


@dataclass
class LoadResult:
    name: str
    flow: Flow
    arrival: ArrivalModel
    batch: int
    concurrency: int
    duration_s: float
    jobs_ok: int
    jobs_per_s: float
    reports_per_s: float
    errors: dict[str, int]
    latency: dict[str, float | None]
    offered_rate: float | None = None
    achieved_rate: float | None = None
    sent_rate: float | None = None
    loadgen_cpu_pct: float | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    checked: int = 0
    service_timings: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def mean_timings(timings: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Means of the numeric fields of the service's ``timings`` (queued_ms, predict_ms, total_ms, ...)."""
    keys = sorted({k for t in timings for k, v in t.items() if isinstance(v, int | float)})
    means: dict[str, float | None] = {}
    for key in keys:
        values = [float(t[key]) for t in timings if isinstance(t.get(key), int | float)]
        means[f"mean_{key}"] = sum(values) / len(values) if values else None
    if timings:
        means["samples"] = float(len(timings))
    return means


def _summarize(
    spec: LoadSpec,
    outcomes: list[Outcome],
    window: float,
    checked: int,
    extra: dict[str, Any],
    timings: Sequence[dict[str, Any]] = (),
) -> LoadResult:
    ok = [o for o in outcomes if o.error is None]
    errors = Counter(o.error for o in outcomes if o.error is not None)
    batch = spec.bodies[0].n_reports
    return LoadResult(
        name=spec.name,
        flow=spec.flow,
        arrival=spec.arrival,
        batch=batch,
        concurrency=spec.concurrency,
        duration_s=round(window, 3),
        jobs_ok=len(ok),
        jobs_per_s=len(ok) / window,
        reports_per_s=sum(o.n_reports for o in ok) / window,
        errors=dict(sorted(errors.items())),
        latency=latency_summary([o.end - o.start for o in ok]),
        checked=checked,
        service_timings=mean_timings(timings),
        **extra,
    )


async def run_load(spec: LoadSpec) -> LoadResult:
    """Run one workload and summarize it."""
    client = make_client(spec.client, spec.base_url, spec.concurrency)
    sampler = ResourceSampler(spec.service_pids)
    try:
        if spec.arrival == "closed":
            return await _closed(spec, client, sampler)
        return await _open(spec, client, sampler)
    finally:
        await client.aclose()


async def _closed(spec: LoadSpec, client: HttpClient, sampler: ResourceSampler) -> LoadResult:
    t_begin = time.monotonic()
    t0 = t_begin + spec.warmup_s
    t1 = t0 + spec.duration_s
    outcomes: list[Outcome] = []
    counter = 0
    checked = 0
    measuring = asyncio.Event()
    cpu0 = [0.0]
    timings: list[dict[str, Any]] = []

    async def start_window() -> None:
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        cpu0[0] = self_cpu_s()
        sampler.start()
        measuring.set()

    async def client_loop(i: int) -> None:
        nonlocal counter, checked
        n = len(spec.bodies)
        k = i
        while time.monotonic() < t1:
            counter += 1
            check = counter % spec.check_every == 0
            body = spec.bodies[k % n]
            k += spec.concurrency
            outcome = await timed_job(
                client, spec.flow, body, spec.sync_path, check, timings=timings if time.monotonic() >= t0 else None
            )
            if t0 <= outcome.end <= t1:
                outcomes.append(outcome)
                checked += check

    window_task = asyncio.create_task(start_window())
    await asyncio.gather(*(client_loop(i) for i in range(spec.concurrency)))
    await window_task
    cpu = self_cpu_s() - cpu0[0]
    resources = await sampler.stop()
    extra = {"loadgen_cpu_pct": round(100 * cpu / (time.monotonic() - t0), 1), "resources": resources}
    return _summarize(spec, outcomes, spec.duration_s, checked, extra, timings)


async def _open(spec: LoadSpec, client: HttpClient, sampler: ResourceSampler) -> LoadResult:
    rng = random.Random(spec.seed)
    t_begin = time.monotonic()
    t0 = t_begin + spec.warmup_s
    t1 = t0 + spec.duration_s
    outcomes: list[Outcome] = []
    tasks: set[asyncio.Task[Outcome]] = set()
    in_window: list[asyncio.Task[Outcome]] = []
    dropped = 0
    sent = 0
    started_window = False
    cpu0 = 0.0
    n = len(spec.bodies)
    k = 0
    next_t = t_begin
    timings: list[dict[str, Any]] = []
    while True:
        next_t += rng.expovariate(spec.rate)
        if next_t >= t1:
            break
        delay = next_t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if not started_window and next_t >= t0:
            started_window = True
            cpu0 = self_cpu_s()
            sampler.start()
        if len(tasks) >= spec.concurrency:
            if next_t >= t0:
                dropped += 1
            continue
        body = spec.bodies[k % n]
        k += 1
        check = k % spec.check_every == 0
        task = asyncio.create_task(
            timed_job(
                client, spec.flow, body, spec.sync_path, check, start=next_t, timings=timings if next_t >= t0 else None
            )
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if next_t >= t0:
            sent += 1
            in_window.append(task)
    if not started_window:
        cpu0 = self_cpu_s()
        sampler.start()
    await asyncio.sleep(max(0.0, t1 - time.monotonic()))
    cpu = self_cpu_s() - cpu0
    resources = await sampler.stop()
    pending: set[asyncio.Task[Outcome]] = set()
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=spec.drain_s)
    for task in pending:
        task.cancel()
    timeouts = 0
    checked = 0
    for task in in_window:
        if task.cancelled() or not task.done():
            timeouts += 1
            continue
        outcome = task.result()
        outcomes.append(outcome)
    checked = sum(1 for i in range(1, sent + 1) if i % spec.check_every == 0)
    for _ in range(timeouts):
        outcomes.append(Outcome(t1, t1, "job timeout (drain)", 0))
    for _ in range(dropped):
        outcomes.append(Outcome(t1, t1, "not sent (in-flight cap)", 0))
    ok = sum(1 for o in outcomes if o.error is None)
    extra = {
        "offered_rate": spec.rate,
        "achieved_rate": ok / spec.duration_s,
        "sent_rate": sent / spec.duration_s,
        "loadgen_cpu_pct": round(100 * cpu / spec.duration_s, 1),
        "resources": resources,
    }
    return _summarize(spec, outcomes, spec.duration_s, checked, extra, timings)
