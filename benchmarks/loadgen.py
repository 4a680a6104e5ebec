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
import contextlib
import os
import random
import resource
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from benchmarks.stats import latency_summary

Flow = Literal["async", "sync"]
ArrivalModel = Literal["closed", "open"]
ClientKind = Literal["raw", "httpx"]

LONG_POLL_WAIT_S = 10
JOB_TIMEOUT_S = 60.0
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


# --- HTTP clients -------------------------------------------------------------------------------------------


class HttpClient(Protocol):
    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class _RawConnection:
    __slots__ = ("last_used", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class RawClient:
    """A minimal HTTP/1.1 keep-alive client: one request per connection at a time, up to ``max_connections``
    connections, idle ones reused most-recent-first and dropped before the server's keep-alive timeout (5 s)."""

    IDLE_MAX_S = 3.0

    def __init__(self, base_url: str, max_connections: int) -> None:
        hostport = base_url.removeprefix("http://").rstrip("/")
        host, _, port = hostport.partition(":")
        self._host = host
        self._port = int(port or 80)
        self._host_header = f"Host: {hostport}\r\n".encode()
        self._idle: list[_RawConnection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def _connect(self) -> _RawConnection:
        reader, writer = await asyncio.open_connection(self._host, self._port, limit=1 << 22)
        return _RawConnection(reader, writer)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        async with self._slots:
            conn: _RawConnection | None = None
            now = time.monotonic()
            while self._idle:
                candidate = self._idle.pop()
                if now - candidate.last_used < self.IDLE_MAX_S:
                    conn = candidate
                    break
                candidate.close()
            if conn is None:
                conn = await self._connect()
            try:
                status, data, keep_alive = await self._exchange(conn, method, path, body)
            except BaseException:
                conn.close()
                raise
            if keep_alive:
                conn.last_used = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
            return status, data

    async def _exchange(
        self, conn: _RawConnection, method: str, path: str, body: bytes | None
    ) -> tuple[int, bytes, bool]:
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_header]
        if body is not None:
            head.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        if body is not None:
            head.append(body)
        conn.writer.write(b"".join(head))
        await conn.writer.drain()
        raw_head = await conn.reader.readuntil(b"\r\n\r\n")
        status = int(raw_head[9:12])
        length = -1
        chunked = False
        keep_alive = True
        for line in raw_head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif lname == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
        if chunked:
            parts = []
            while True:
                size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await conn.reader.readuntil(b"\r\n")
                    break
                parts.append(await conn.reader.readexactly(size))
                await conn.reader.readexactly(2)
            data = b"".join(parts)
        elif length >= 0:
            data = await conn.reader.readexactly(length)
        else:
            data = await conn.reader.read()
            keep_alive = False
        return status, data, keep_alive

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class HttpxClient:
    """``httpx2.AsyncClient`` with a pool of ``max_connections`` keep-alive connections."""

    def __init__(self, base_url: str, max_connections: int) -> None:
        import httpx2 as httpx

        self._client = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            timeout=httpx.Timeout(JOB_TIMEOUT_S),
            trust_env=False,
        )

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"} if body is not None else None
        resp = await self._client.request(method, path, content=body, headers=headers)
        return resp.status_code, resp.content

    async def aclose(self) -> None:
        await self._client.aclose()


def make_client(kind: ClientKind, base_url: str, max_connections: int) -> HttpClient:
    if kind == "httpx":
        return HttpxClient(base_url, max_connections)
    return RawClient(base_url, max_connections)


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
    if flow == "sync":
        status, data = await client.request("POST", sync_path, body.payload)
        if status != 200:
            return f"score {status}"
        result = orjson.loads(data)
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


# --- resource sampling (service processes) ------------------------------------------------------------------


def _read_status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def process_tree(roots: Sequence[int]) -> list[int]:
    """``roots`` and all their live descendants (scans /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [p for p in roots if Path(f"/proc/{p}").exists()]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


class ResourceSampler:
    """Samples the summed VmRSS of a process tree every ``interval_s``, and its CPU time over the run."""

    def __init__(self, roots: Sequence[int], interval_s: float = 0.2) -> None:
        self.roots = list(roots)
        self.interval_s = interval_s
        self.peak_rss_kb = 0
        self.pids: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self._cpu0: dict[int, int] = {}
        self._t0 = 0.0

    def _cpu(self) -> dict[int, int]:
        return {pid: _cpu_ticks(pid) for pid in self.pids}

    def start(self) -> None:
        self.pids = process_tree(self.roots) if self.roots else []
        self._cpu0 = self._cpu()
        self._machine0 = _machine_ticks()
        self._t0 = time.monotonic()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        last_scan = time.monotonic()
        while True:
            if time.monotonic() - last_scan > 2.0:
                known = set(self.pids)
                for pid in process_tree(self.roots):
                    if pid not in known:
                        self.pids.append(pid)
                        self._cpu0[pid] = 0
                last_scan = time.monotonic()
            total = sum(_read_status_kb(pid, "VmRSS") for pid in self.pids)
            self.peak_rss_kb = max(self.peak_rss_kb, total)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        elapsed = time.monotonic() - self._t0
        cpu1 = self._cpu()
        ticks = sum(max(0, cpu1.get(pid, 0) - self._cpu0.get(pid, 0)) for pid in self.pids)
        hz = os.sysconf("SC_CLK_TCK")
        busy1, total1 = _machine_ticks()
        busy0, total0 = getattr(self, "_machine0", (0, 0))
        ncpu = os.cpu_count() or 1
        machine_pct = 100 * ncpu * (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
        return {
            "machine_cpu_pct": round(machine_pct, 1) if machine_pct is not None else None,
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1) if self.pids else None,
            "hwm_rss_mb": round(sum(_read_status_kb(p, "VmHWM") for p in self.pids) / 1024, 1) if self.pids else None,
            "service_cpu_pct": round(100 * ticks / hz / elapsed, 1) if self.pids and elapsed > 0 else None,
            "service_processes": len(self.pids),
        }


async def wait_idle(pids: Sequence[int], *, below_pct: float = 10.0, max_s: float = 60.0) -> float:
    """Wait until the process tree of ``pids`` uses less than ``below_pct`` CPU over half a second (the backlog
    of the previous workload is done), at most ``max_s``; returns the seconds waited."""
    t0 = time.monotonic()
    hz = os.sysconf("SC_CLK_TCK")
    while time.monotonic() - t0 < max_s:
        tree = process_tree(pids)
        before = sum(_cpu_ticks(p) for p in tree)
        await asyncio.sleep(0.5)
        used = sum(_cpu_ticks(p) for p in tree) - before
        if 100 * used / hz / 0.5 < below_pct:
            break
    return time.monotonic() - t0


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
        cpu0[0] = _self_cpu_s()
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
    cpu = _self_cpu_s() - cpu0[0]
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
            cpu0 = _self_cpu_s()
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
        cpu0 = _self_cpu_s()
        sampler.start()
    await asyncio.sleep(max(0.0, t1 - time.monotonic()))
    cpu = _self_cpu_s() - cpu0
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
