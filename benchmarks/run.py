"""Run the benchmark suite: floors, embedded service, distributed deployment; write RESULTS.md and results.json.

    .venv/bin/python -m benchmarks.run            # the full suite (~10-15 min), writes benchmarks/RESULTS.md
    .venv/bin/python -m benchmarks.run --quick    # ~2 min smoke run, writes into --out only

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import model_floor, report, services, storage_floor
from benchmarks.loadgen import Body, ClientKind, Flow, LoadSpec, make_bodies, run_load, wait_idle

HERE = Path(__file__).resolve().parent
CLOSED_MATRIX: tuple[tuple[Flow, int, int], ...] = tuple(
    (flow, batch, conc) for flow in ("async", "sync") for batch in (1, 100) for conc in (8, 64)
)
PACKAGES = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic-core",
    "uvicorn",
    "uvloop",
    "httptools",
    "orjson",
    "sqlalchemy",
    "xgboost-cpu",
    "numpy",
    "celery",
    "kombu",
    "redis",
    "psycopg",
    "httpx2",
)
Runner = Callable[[Coroutine[Any, Any, Any]], Any]
OPEN_LOOP_CAP = 0.8  # open loop offers at most this fraction of the service's own closed-loop capacity


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ncpu = os.cpu_count() or 1
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark reportscore against floors measured in the same run.",
    )
    p.add_argument("--quick", action="store_true", help="~2-3 minute smoke run (short workloads); results go to --out")
    p.add_argument("--out", type=Path, default=HERE / "out", help="logs, data and raw output [benchmarks/out/]")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="also write RESULTS.md and results.json here [always --out; also benchmarks/ for a complete run: "
        "not --quick and no --no-* option]",
    )
    p.add_argument("--duration", type=float, default=None, help="measured seconds per workload [12; quick 1.5]")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per workload [3; quick 0.5]")
    p.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="HTTP client of the load generator: raw asyncio HTTP/1.1 (default, cheapest) or httpx2.AsyncClient",
    )
    p.add_argument("--loadgen-cpu", type=int, default=ncpu - 1, help=f"core of the load generator [{ncpu - 1}]")
    p.add_argument(
        "--service-cpus",
        default=None,
        help="comma-separated cores for the floor app, API and workers [all but the load generator's]",
    )
    p.add_argument("--dist-workers", type=int, default=2, help="`reportscore worker` processes [2]")
    p.add_argument("--dist-concurrency", type=int, default=1, help="pool processes per worker [1]")
    p.add_argument("--check-every", type=int, default=1, help="check the scores of every n-th job [1: all]")
    p.add_argument("--no-embedded", action="store_true", help="skip the embedded service")
    p.add_argument("--no-distributed", action="store_true", help="skip the distributed deployment")
    p.add_argument("--no-open-loop", action="store_true", help="skip the open-loop (fixed arrival rate) workloads")
    p.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, profile a separate embedded instance under the target workloads "
        "(yappi CPU profile per workload if installed (dev group), else py-spy, else pyinstrument, else a sampler)",
    )
    p.add_argument(
        "--src",
        type=Path,
        default=None,
        help="benchmark the reportscore package under this directory instead of the working tree's src/ "
        "(e.g. `mkdir /tmp/rs && git archive HEAD src | tar -x -C /tmp/rs` then --src /tmp/rs/src)",
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: re-render RESULTS.md from the results.json next to it (in --results-dir or benchmarks/)",
    )
    p.add_argument("--keep-data", action="store_true", help="keep the embedded SQLite files in --out")
    return p.parse_args(argv)


# --- machine --------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=False, timeout=10
            ).stdout.strip()
        except OSError:
            return ""

    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gb": mem_kb / 1024 / 1024,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": packages,
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "src")),
        "servers": services.server_versions(),
    }


# --- workloads ------------------------------------------------------------------------------------------------


class Suite:
    def __init__(self, args: argparse.Namespace, runner: Runner) -> None:
        self.args = args
        self.run_coro = runner
        self.rows: list[dict[str, Any]] = []
        ncpu = os.cpu_count() or 1
        self.loadgen_cpu: int = args.loadgen_cpu
        if args.service_cpus:
            self.service_cpus = {int(c) for c in args.service_cpus.split(",")}
        else:
            self.service_cpus = set(range(ncpu)) - {self.loadgen_cpu} or {self.loadgen_cpu}
        self.duration = args.duration if args.duration is not None else (1.5 if args.quick else 12.0)
        self.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 3.0)
        self.client: ClientKind = args.client
        self.bodies: dict[int, list[Body]] = {}
        self.floor_bodies: dict[int, list[Body]] = {}
        self.sync_available: dict[str, dict[str, Any]] = {}
        self.service_config: dict[str, Any] = {}
        self.cleanup: dict[str, Any] = {}
        self.phase_errors: dict[str, str] = {}
        self.log_problems: dict[str, dict[str, int]] = {}

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def prepare_bodies(self) -> None:
        from reportscore.scoring.synthetic import sample_reports

        reports = sample_reports(20_000, seed=20261127)
        expected = model_floor.expected_scores(reports)
        self.bodies = {1: make_bodies(reports[:4096], 1, expected[:4096]), 100: make_bodies(reports, 100, expected)}
        self.floor_bodies = {b: [Body(x.payload, x.n_reports, None) for x in v] for b, v in self.bodies.items()}

    def workload(
        self,
        deployment: str,
        url: str,
        flow: Flow,
        batch: int,
        concurrency: int,
        pids: list[int],
        *,
        rate: float | None = None,
        floor_concurrency: int | None = None,
        rate_basis: str | None = None,
    ) -> None:
        is_open = rate is not None
        name = (
            report.open_name(deployment, flow, batch)
            if is_open
            else report.workload_name(deployment, flow, batch, concurrency)
        )
        base: dict[str, Any] = {
            "name": name,
            "deployment": deployment,
            "flow": flow,
            "batch": batch,
            "concurrency": concurrency,
            "arrival": "open" if is_open else "closed",
        }
        if floor_concurrency is not None:
            base["floor_concurrency"] = floor_concurrency
        if flow == "sync" and deployment != "floor" and not self.sync_available.get(deployment, {}).get("available"):
            self.rows.append({**base, "status": "not available (POST /score answers 404)"})
            self.log(f"{name}: skipped, POST /score not available")
            return
        spec = LoadSpec(
            name=name,
            base_url=url,
            flow=flow,
            bodies=(self.floor_bodies if deployment == "floor" else self.bodies)[batch],
            concurrency=concurrency,
            arrival="open" if is_open else "closed",
            rate=rate or 0.0,
            duration_s=self.duration,
            warmup_s=self.warmup,
            check_every=self.args.check_every,
            client=self.client,
            service_pids=pids,
            drain_s=max(10.0, self.duration),
        )
        waited = self.run_coro(wait_idle(pids)) if deployment != "floor" else 0.0
        result = self.run_coro(run_load(spec))
        row = {**result.as_dict(), **base, "status": "ok", "idle_wait_s": round(waited, 1)}
        if rate_basis is not None:
            row["rate_basis"] = rate_basis
        self.rows.append(row)
        lat = result.latency
        p99 = lat["p99_ms"]
        self.log(
            f"{name}: {result.jobs_per_s:,.0f} jobs/s, {result.reports_per_s:,.0f} reports/s, "
            f"p99 {p99 if p99 is None else round(p99, 1)} ms, errors {result.errors or 0}, "
            f"service CPU {result.resources.get('service_cpu_pct')}%, loadgen CPU {result.loadgen_cpu_pct}%"
            + (f", offered {rate:,.0f}/s achieved {result.achieved_rate:,.0f}/s" if is_open and rate else "")
        )
        time.sleep(0.2)

    def closed_matrix(self, deployment: str, url: str, pids: list[int]) -> None:
        for flow, batch, conc in CLOSED_MATRIX:
            self.workload(deployment, url, flow, batch, conc, pids)

    def open_loops(self, deployment: str, url: str, pids: list[int]) -> None:
        """Poisson arrivals at each target's rate (target ratio x the floor's jobs/s), or at 80% of the service's
        own best closed-loop rate for that flow and B when it cannot sustain the target rate (offering more than
        it can do only measures a growing queue)."""
        if self.args.no_open_loop:
            return
        for target in report.TARGETS:
            if target.deployment != deployment:
                continue
            floor = report.floor_row(self.rows, target.flow, target.batch, target.concurrency)
            if floor is None or floor.get("status") != "ok" or not floor["jobs_per_s"]:
                continue
            own = [
                r["jobs_per_s"]
                for r in self.rows
                if r["deployment"] == deployment
                and r["flow"] == target.flow
                and r["batch"] == target.batch
                and r["arrival"] == "closed"
                and r.get("status") == "ok"
            ]
            if not own:
                continue
            target_rate = target.min_ratio * floor["jobs_per_s"]
            capacity_rate = OPEN_LOOP_CAP * max(own)
            rate, basis = (
                (target_rate, f"target rate ({target.min_ratio:.0%} of the floor)")
                if target_rate <= capacity_rate
                else (capacity_rate, f"{OPEN_LOOP_CAP:.0%} of its own closed-loop best (target rate not sustainable)")
            )
            if rate <= 0:
                continue
            self.workload(
                deployment,
                url,
                target.flow,
                target.batch,
                1024,
                pids,
                rate=rate,
                floor_concurrency=target.concurrency,
                rate_basis=basis,
            )

    # --- phases -----------------------------------------------------------------------------------------------

    def guarded(self, deployment: str, phase: Callable[[], None]) -> None:
        """Run a phase; if it fails (a service that does not start, say), record its workloads as not run."""
        try:
            phase()
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            self.log(f"{deployment}: failed: {type(exc).__name__}: {str(exc)[-3000:]}")
            self.phase_errors[deployment] = f"{type(exc).__name__}: {str(exc)[-3000:]}"
            done = {r["name"] for r in self.rows}
            for flow, batch, conc in CLOSED_MATRIX:
                name = report.workload_name(deployment, flow, batch, conc)
                if name not in done:
                    self.rows.append(
                        {
                            "name": name,
                            "deployment": deployment,
                            "flow": flow,
                            "batch": batch,
                            "concurrency": conc,
                            "arrival": "closed",
                            "status": f"not run: {type(exc).__name__} {reason}".strip(),
                        }
                    )

    def phase_floor(self) -> None:
        server = services.floor_server(self.args.out, self.service_cpus)
        self.log(f"floor app on core(s) {sorted(self.service_cpus)}")
        server.start()
        try:
            server.wait_ready()
            self.closed_matrix("floor", server.url, [server.pid])
        finally:
            server.stop()

    def phase_embedded(self) -> None:
        server = services.embedded_server(self.args.out, self.service_cpus)
        self.service_config["embedded"] = services.config_show({})
        self.log("embedded service: starting")
        server.start()
        try:
            server.wait_ready()
            self.sync_available["embedded"] = services.probe_sync(server.url)
            self.log(f"embedded service ready; POST /score: {self.sync_available['embedded']}")
            self.closed_matrix("embedded", server.url, [server.pid])
            self.open_loops("embedded", server.url, [server.pid])
        finally:
            server.stop()
            self._remove_data("embedded")
            self.log_problems["embedded"] = services.log_problems([server.log_path])

    def phase_distributed(self) -> None:
        ok, why = services.shared_services_available()
        if not ok:
            self.log(f"distributed: skipped ({why})")
            for flow, batch, conc in CLOSED_MATRIX:
                self.rows.append(
                    {
                        "name": report.workload_name("distributed", flow, batch, conc),
                        "deployment": "distributed",
                        "flow": flow,
                        "batch": batch,
                        "concurrency": conc,
                        "arrival": "closed",
                        "status": f"not run: {why}",
                    }
                )
            return
        cluster = services.Cluster(
            self.args.out, self.service_cpus, workers=self.args.dist_workers, concurrency=self.args.dist_concurrency
        )
        self.log(f"distributed: database {cluster.db_name}, Redis prefix {cluster.prefix}")
        try:
            cluster.start()
            assert cluster.api is not None
            self.service_config["distributed"] = services.config_show(cluster.env)
            url = cluster.api.url
            self.sync_available["distributed"] = services.probe_sync(url)
            self.log(f"distributed ready (pids {cluster.pids()}); POST /score: {self.sync_available['distributed']}")
            pids = cluster.pids()
            self.closed_matrix("distributed", url, pids)
            self.open_loops("distributed", url, pids)
        finally:
            self.cleanup["distributed"] = cluster.stop()
            logs = [p.log_path for p in ([cluster.api] if cluster.api else []) + cluster.worker_procs]
            self.log_problems["distributed"] = services.log_problems(logs)
            self.log(f"distributed: cleaned up {self.cleanup['distributed']}")

    def _remove_data(self, prefix: str) -> None:
        if self.args.keep_data:
            return
        for path in self.args.out.glob(f"{prefix}-data-*"):
            shutil.rmtree(path, ignore_errors=True)

    def phase_profile(self) -> dict[str, Any]:
        """Profile a separate embedded instance (so the measured runs carry no profiler overhead)."""
        out: Path = self.args.out
        venv_spy = services.VENV_BIN / "py-spy"
        py_spy = shutil.which("py-spy") or (str(venv_spy) if venv_spy.exists() else None)
        profiler_cmd: list[str] | None = None
        sampler_out = out / "profile-embedded.folded"
        for stale in (sampler_out, Path(f"{sampler_out}.start"), Path(f"{sampler_out}.stop")):
            stale.unlink(missing_ok=True)
        control = out / "cpu-profile"
        for stale in (Path(f"{control}.start"), Path(f"{control}.stop")):
            stale.unlink(missing_ok=True)
        tool: str
        if importlib.util.find_spec("yappi") is not None:
            tool = "yappi"
            profiler_cmd = [sys.executable, "-m", "benchmarks.cpu_profile", "--control", str(control)]
        elif py_spy:
            tool = "py-spy"
        elif importlib.util.find_spec("pyinstrument") is not None:
            tool = "pyinstrument"
            profiler_cmd = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out / "profile-embedded.txt")]
        else:
            tool = "sampler"
            profiler_cmd = [sys.executable, "-m", "benchmarks.sampler", "-o", str(sampler_out)]
        self.log(f"profile: {tool}")
        server = services.embedded_server(out, self.service_cpus, name="embedded-profiled", profile=profiler_cmd)
        server.start()
        spy: subprocess.Popen[bytes] | None = None
        rows_before = len(self.rows)
        try:
            server.wait_ready()
            self.sync_available["embedded-profiled"] = services.probe_sync(server.url)
            if tool == "py-spy" and py_spy:
                spy = subprocess.Popen(
                    [py_spy, "record", "--pid", str(server.pid), "--format", "raw", "--threads", "--rate", "200",
                     "--output", str(sampler_out), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            if tool == "sampler":
                Path(f"{sampler_out}.start").touch()
            profiled_matrix: tuple[tuple[Flow, int, int], ...] = (("async", 1, 64), ("sync", 1, 8), ("async", 100, 64))
            for flow, batch, conc in profiled_matrix:
                target = out / f"cpu-profile-{flow}-b{batch}-c{conc}.pstat"
                if tool == "yappi":
                    target.unlink(missing_ok=True)
                    Path(f"{control}.start").write_text(str(target))
                self.workload("embedded-profiled", server.url, flow, batch, conc, [server.pid])
                if tool == "yappi":
                    Path(f"{control}.stop").touch()
                    deadline = time.monotonic() + 60
                    while not target.exists() and time.monotonic() < deadline:
                        time.sleep(0.1)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
                try:
                    spy.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()
            if tool == "sampler":
                Path(f"{sampler_out}.stop").touch()
                deadline = time.monotonic() + 15
                while not sampler_out.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
            server.stop()
            self._remove_data("embedded-profiled")
        profiled = self.rows[rows_before:]
        del self.rows[rows_before:]  # profiled runs may be slower: not results
        summary = summarize_profile(tool, out, profiled)
        return {"tool": tool, "workloads": profiled, **summary}


def summarize_profile(tool: str, out: Path, profiled: list[dict[str, Any]]) -> dict[str, Any]:
    """A text summary of the profile for RESULTS.md, and the path of the full one."""
    workloads = ", ".join(
        f"{r['name'].removeprefix('embedded-profiled ')} ({r.get('jobs_per_s', 0):,.0f} jobs/s)"
        for r in profiled
        if r.get("status") == "ok"
    )
    intro = (
        f"A separate embedded instance, profiled while it ran {workloads} (about {len(profiled)} x the workload "
        "duration). "
    )
    if tool == "yappi":
        parts = []
        for r in profiled:
            flow, batch, conc = r.get("flow"), r.get("batch"), r.get("concurrency")
            text_path = out / f"cpu-profile-{flow}-b{batch}-c{conc}.pstat.txt"
            text = text_path.read_text() if text_path.exists() else "no profile written"
            parts.append(f"#### {flow} B={batch} C={conc}\n\n```\n{text}\n```")
        md = (
            f"{intro}Profiler: yappi, CPU clock, every thread, one profile per workload (`benchmarks/cpu_profile.py`; "
            "pstats files `cpu-profile-*.pstat` in the output directory). CPU time per thread, then per function; "
            "the profiler's hooks inflate Python-heavy functions, so read shares, not absolute times:\n\n"
            + "\n\n".join(parts)
        )
        return {"summary_md": md, "path": str(out)}
    if tool in ("py-spy", "sampler"):
        from benchmarks.sampler import summarize

        path = out / "profile-embedded.folded"
        if not path.exists():
            return {"summary_md": f"{tool} wrote no output.", "path": None}
        text = summarize(path.read_text())
        (out / "profile-embedded.txt").write_text(text + "\n")
        how = (
            "py-spy (all threads)"
            if tool == "py-spy"
            else "`benchmarks/sampler.py` (py-spy and pyinstrument are not installed): wall-clock samples of every "
            "thread's Python stack every 5 ms; C code is charged to the Python frame that called it; 'busy' "
            "excludes parked threads (waiting on a queue, a condition, or the event loop's own C code and I/O wait)"
        )
        md = (
            f"{intro}Profiler: {how}. Per thread group, the share of busy samples by function "
            f"(full collapsed stacks: `{path.name}` in the output directory, usable with flamegraph tools):"
            f"\n\n```\n{text}\n```"
        )
        return {"summary_md": md, "path": str(path)}
    path = out / "profile-embedded.txt"
    text = path.read_text() if path.exists() else "pyinstrument wrote no output."
    return {"summary_md": f"{intro}pyinstrument (main thread):\n\n```\n{text[:8000]}\n```", "path": str(path)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        directory = (args.results_dir or HERE).resolve()
        saved = json.loads((directory / "results.json").read_text())
        (directory / "RESULTS.md").write_text(report.render(saved))
        print(f"rendered {directory / 'RESULTS.md'}")
        return 0
    args.out = args.out.resolve()
    if args.src is not None:
        services.SERVICE_SRC = args.src.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    # Everything goes to --out; a complete run (not --quick, no --no-* skips) also publishes to benchmarks/.
    complete = not (args.quick or args.no_embedded or args.no_distributed or args.no_open_loop)
    results_dirs = {args.out}
    if args.results_dir is not None:
        results_dirs.add(args.results_dir.resolve())
    elif complete:
        results_dirs.add(HERE)
    for directory in results_dirs:
        directory.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    t_start = time.monotonic()

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
        suite = Suite(args, loop_runner.run)
        if suite.loadgen_cpu in suite.service_cpus:
            suite.log("warning: the load generator shares a core with the service")
        suite.log(f"machine info; load generator pinned to core {suite.loadgen_cpu}")
        machine = machine_info()
        suite.log("raw-model floors")
        model_floors = model_floor.measure_all(
            _reports_for_model(), one_cpu=min(suite.service_cpus), seconds=0.4 if args.quick else 1.5
        )
        suite.log("storage floor")
        storage_floors = storage_floor.measure(
            _reports_for_model(), cpus={min(suite.service_cpus)}, seconds=0.5 if args.quick else 2.0
        )
        os.sched_setaffinity(0, {suite.loadgen_cpu})
        suite.log("request bodies and expected scores")
        suite.prepare_bodies()
        profile: dict[str, Any] | None = None
        try:
            suite.guarded("floor", suite.phase_floor)
            if not args.no_embedded:
                suite.guarded("embedded", suite.phase_embedded)
            if not args.no_distributed:
                suite.guarded("distributed", suite.phase_distributed)
            if args.profile:
                try:
                    profile = suite.phase_profile()
                except Exception as exc:
                    suite.log(f"profile failed: {type(exc).__name__}: {str(exc)[-2000:]}")
                    profile = {"tool": None, "summary_md": f"profiling failed: {type(exc).__name__}"}
        except KeyboardInterrupt:
            suite.log("interrupted: writing what was measured")

    evaluation = report.evaluate(suite.rows)
    sync = suite.sync_available
    sync_text = "; ".join(
        f"{dep}: {'available' if info.get('available') else 'not available'} (probe status {info.get('status')})"
        for dep, info in sync.items()
        if dep != "embedded-profiled"
    )
    command = ".venv/bin/python -m benchmarks.run" + (" " + " ".join(argv if argv is not None else sys.argv[1:]))
    results: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(time.monotonic() - t_start, 1),
        "machine": machine,
        "config": {
            "command": command.strip(),
            "quick": args.quick,
            "duration_s": suite.duration,
            "warmup_s": suite.warmup,
            "client": suite.client,
            "loadgen_cpu": suite.loadgen_cpu,
            "service_cpus": sorted(suite.service_cpus),
            "dist_workers": args.dist_workers,
            "dist_concurrency": args.dist_concurrency,
            "check_every": args.check_every,
            "service_src": str(services.SERVICE_SRC) if services.SERVICE_SRC else "working tree (src/)",
            "results_json_name": "results.json",
        },
        "service_config": suite.service_config,
        "sync_available": sync,
        "sync_available_text": sync_text or "not probed",
        "model_floors": model_floors,
        "storage_floors": storage_floors,
        "workloads": suite.rows,
        "targets": evaluation,
        "profile": profile,
        "cleanup": suite.cleanup,
        "phase_errors": suite.phase_errors,
        "service_log_problems": suite.log_problems,
    }
    results = json.loads(report.portable(json.dumps(results, default=str), checkout=str(HERE.parent)))
    for directory in sorted(results_dirs):
        json_path = directory / "results.json"
        md_path = directory / "RESULTS.md"
        json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        md_path.write_text(report.render(results))
        suite.log(f"wrote {md_path} and {json_path} ({results['elapsed_s']:.0f} s)")
    print("\n".join(report.main_table(suite.rows, evaluation)))
    return 0


def _reports_for_model() -> list[dict[str, Any]]:
    from reportscore.scoring.synthetic import sample_reports

    return sample_reports(1000, seed=1)


if __name__ == "__main__":
    raise SystemExit(main())
