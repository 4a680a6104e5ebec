"""The suite's workloads: the closed-loop matrix and open-loop rows of each deployment, and its phases (the HTTP
floor, the embedded service, the distributed deployment), each recorded as result rows."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks import mlserver_anchor, model_floor, services, targets
from benchmarks.http_clients import ClientKind
from benchmarks.loadgen import Body, Flow, LoadSpec, make_bodies, run_load
from benchmarks.resources import wait_idle

CLOSED_MATRIX: tuple[tuple[Flow, int, int], ...] = tuple(
    (flow, batch, conc) for flow in ("async", "sync") for batch in (1, 100) for conc in (8, 64)
)
ANCHOR_MATRIX: tuple[tuple[Flow, int, int], ...] = (("v2", 1, 8), ("v2", 100, 8))
NOPERSIST_MATRIX: tuple[tuple[Flow, int, int], ...] = (("sync-nopersist", 100, 8),)
SYNC_PATHS: dict[str, str] = {
    "sync": "/score",
    "sync-nopersist": "/score?persist=false",
    "v2": mlserver_anchor.INFER_PATH,
}
Runner = Callable[[Coroutine[Any, Any, Any]], Any]
OPEN_LOOP_CAP = 0.8  # open loop offers at most this fraction of the service's own closed-loop capacity


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
        self.v2_bodies: dict[int, list[Body]] = {}
        self.only: list[str] = [p.strip().lower() for p in (args.only or "").split(",") if p.strip()]
        self.mlserver: dict[str, Any] | None = None

    def selected(self, name: str) -> bool:
        """Whether ``--only`` (comma-separated parts of workload names, any case) lets the workload ``name`` run. The
        profiled instance's workloads go by the names of the embedded ones they repeat."""
        plain = name.lower().replace("embedded-profiled ", "embedded ")
        return not self.only or any(part in plain for part in self.only)

    def wants(self, deployment: str, matrix: tuple[tuple[Flow, int, int], ...] = CLOSED_MATRIX) -> bool:
        """Whether any workload of ``deployment`` in ``matrix`` (or its open-loop rows) is selected."""
        names = [targets.workload_name(deployment, f, b, c) for f, b, c in matrix]
        names += [targets.open_name(deployment, t.flow, t.batch) for t in targets.FLOOR_TARGETS]
        return any(self.selected(n) for n in names)

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def prepare_bodies(self) -> None:
        from reportscore.scoring.synthetic import sample_reports

        reports = sample_reports(20_000, seed=20261127)
        expected = model_floor.expected_scores(reports)
        self.bodies = {1: make_bodies(reports[:4096], 1, expected[:4096]), 100: make_bodies(reports, 100, expected)}
        self.floor_bodies = {b: [Body(x.payload, x.n_reports, None) for x in v] for b, v in self.bodies.items()}
        if not self.args.no_mlserver and self.wants("mlserver", ANCHOR_MATRIX):
            self.v2_bodies = {
                1: mlserver_anchor.v2_bodies(reports[:4096], 1, expected[:4096]),
                100: mlserver_anchor.v2_bodies(reports, 100, expected),
            }

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
            targets.open_name(deployment, flow, batch)
            if is_open
            else targets.workload_name(deployment, flow, batch, concurrency)
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
        if not self.selected(name):
            return
        if (
            flow.startswith("sync")
            and deployment != "floor"
            and not self.sync_available.get(deployment, {}).get("available")
        ):
            self.rows.append({**base, "status": "not available (POST /score answers 404)"})
            self.log(f"{name}: skipped, POST /score not available")
            return
        spec = LoadSpec(
            name=name,
            base_url=url,
            flow=flow,
            bodies=self.bodies_for(deployment)[batch],
            sync_path=SYNC_PATHS.get(flow, "/score"),
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

    def measure(
        self,
        *,
        url: str,
        pids: list[int],
        deployment: str,
        name: str,
        flow: Flow,
        batch: int,
        concurrency: int,
        bodies: list[Body],
        rate: float = 0.0,
        counters: Callable[[], dict[str, float]] | None = None,
        describe: Callable[[dict[str, float]], tuple[dict[str, Any], str]] | None = None,
    ) -> None:
        """One workload of a phase with a service of its own: wait until the service is idle, run it, record its
        row. ``counters`` is read from the service before and after; ``describe`` turns their difference into the
        row's extra fields and the log line's extra text."""
        spec = LoadSpec(
            name=name,
            base_url=url,
            flow=flow,
            bodies=bodies,
            sync_path=SYNC_PATHS.get(flow, "/score"),
            concurrency=concurrency,
            arrival="open" if rate else "closed",
            rate=rate,
            duration_s=self.duration,
            warmup_s=self.warmup,
            check_every=self.args.check_every,
            client=self.client,
            service_pids=pids,
            drain_s=max(10.0, self.duration),
        )
        self.run_coro(wait_idle(pids))
        before = counters() if counters else {}
        result = self.run_coro(run_load(spec))
        after = counters() if counters else {}
        fields, text = describe({k: after[k] - before[k] for k in after}) if describe else ({}, "")
        row: dict[str, Any] = {
            **result.as_dict(),
            "name": name,
            "deployment": deployment,
            "flow": flow,
            "batch": batch,
            "concurrency": concurrency,
            "arrival": "open" if rate else "closed",
            "status": "ok",
            **fields,
        }
        self.rows.append(row)
        p99 = result.latency["p99_ms"]
        self.log(
            f"{name}: {result.jobs_per_s:,.0f} jobs/s, {result.reports_per_s:,.0f} reports/s, "
            f"p99 {p99 if p99 is None else round(p99, 1)} ms, errors {result.errors or 0}, "
            + (f"{text}, " if text else "")
            + f"service CPU {result.resources.get('service_cpu_pct')}%"
            + (f", offered {rate:,.0f} jobs/s" if rate else "")
        )

    def bodies_for(self, deployment: str) -> dict[int, list[Body]]:
        if deployment == "floor":
            return self.floor_bodies
        return self.v2_bodies if deployment == "mlserver" else self.bodies

    def closed_matrix(
        self, deployment: str, url: str, pids: list[int], matrix: tuple[tuple[Flow, int, int], ...] = CLOSED_MATRIX
    ) -> None:
        for flow, batch, conc in matrix:
            self.workload(deployment, url, flow, batch, conc, pids)

    def open_loops(self, deployment: str, url: str, pids: list[int]) -> None:
        """Poisson arrivals at each target's rate (target ratio x the floor's jobs/s), or at 80% of the service's
        own best closed-loop rate for that flow and B when it cannot sustain the target rate (offering more than
        it can do only measures a growing queue)."""
        if self.args.no_open_loop:
            return
        for target in targets.FLOOR_TARGETS:
            if target.deployment != deployment:
                continue
            floor = targets.floor_row(self.rows, target.flow, target.batch, target.concurrency)
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

    def guarded(
        self, deployment: str, phase: Callable[[], None], matrix: tuple[tuple[Flow, int, int], ...] = CLOSED_MATRIX
    ) -> None:
        """Run a phase; if it fails (a service that does not start, say), record its workloads as not run."""
        try:
            phase()
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            self.log(f"{deployment}: failed: {type(exc).__name__}: {str(exc)[-3000:]}")
            self.phase_errors[deployment] = f"{type(exc).__name__}: {str(exc)[-3000:]}"
            status = f"not run: {type(exc).__name__} {reason}".strip()
            if deployment == "mlserver":
                self.mlserver = {**(self.mlserver or {}), "status": status}
            done = {r["name"] for r in self.rows}
            self.not_run(
                deployment, tuple(m for m in matrix if targets.workload_name(deployment, *m) not in done), status
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
            self.closed_matrix("embedded", server.url, [server.pid], NOPERSIST_MATRIX)
            self.open_loops("embedded", server.url, [server.pid])
        finally:
            server.stop()
            self.remove_data("embedded")
            self.log_problems["embedded"] = services.log_problems([server.log_path])

    def phase_distributed(self) -> None:
        ok, why = services.shared_services_available()
        if not ok:
            self.log(f"distributed: skipped ({why})")
            self.not_run("distributed", CLOSED_MATRIX, f"not run: {why}")
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

    def remove_data(self, prefix: str) -> None:
        if self.args.keep_data:
            return
        for path in self.args.out.glob(f"{prefix}-data-*"):
            shutil.rmtree(path, ignore_errors=True)

    def phase_mlserver(self) -> None:
        """The MLServer anchor (``mlserver_anchor.py``): its venv built if needed, then V2 B=1 and B=100 at C=8."""
        names = [targets.workload_name("mlserver", f, b, c) for f, b, c in ANCHOR_MATRIX]
        if self.args.no_mlserver:
            self.mlserver = {"status": "not run (--no-mlserver)"}
            self.not_run("mlserver", ANCHOR_MATRIX, "not run (--no-mlserver)")
            return
        if not any(self.selected(n) for n in names):
            return
        try:
            venv = mlserver_anchor.ensure_venv(self.args.mlserver_cache_dir, log=self.log)
        except mlserver_anchor.AnchorUnavailableError as exc:
            self.mlserver = {"status": f"not run: {str(exc).splitlines()[0][:200]}"}
            self.not_run("mlserver", ANCHOR_MATRIX, self.mlserver["status"])
            return
        server = mlserver_anchor.mlserver_server(self.args.out, self.service_cpus, venv)
        self.log(f"mlserver anchor on core(s) {sorted(self.service_cpus)}: starting")
        server.start()
        try:
            server.wait_ready(timeout_s=180.0)
            from reportscore.scoring.synthetic import sample_reports

            reports = sample_reports(1000, seed=7)
            check = mlserver_anchor.agreement(server.url, reports, model_floor.expected_scores(reports))
            self.mlserver = {
                "status": "ok",
                "version": mlserver_anchor.installed_version(venv),
                "pins": ", ".join(mlserver_anchor.PINS),
                "infer_path": mlserver_anchor.INFER_PATH,
                "parallel_workers": mlserver_anchor.PARALLEL_WORKERS,
                "max_abs_diff": check["max_abs_diff"],
                "agreement_reports": check["reports"],
            }
            self.log(f"mlserver ready; scores vs XGBoost's own: max abs diff {check['max_abs_diff']:g}")
            self.closed_matrix("mlserver", server.url, [server.pid], ANCHOR_MATRIX)
        finally:
            server.stop()

    def not_run(self, deployment: str, matrix: tuple[tuple[Flow, int, int], ...], status: str) -> None:
        for flow, batch, conc in matrix:
            name = targets.workload_name(deployment, flow, batch, conc)
            if self.selected(name):
                self.rows.append(
                    {
                        "name": name,
                        "deployment": deployment,
                        "flow": flow,
                        "batch": batch,
                        "concurrency": conc,
                        "arrival": "closed",
                        "status": status,
                    }
                )
