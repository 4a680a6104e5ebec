"""Run the benchmark suite: floors, embedded service, distributed deployment; write RESULTS.md and results.json.

    .venv/bin/python -m benchmarks.run            # the full suite (~10-15 min), writes benchmarks/RESULTS.md
    .venv/bin/python -m benchmarks.run --quick    # ~2 min smoke run, writes into --out only

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import model_floor, report, score_cache, services, shadow_cost, storage_floor, targets
from benchmarks.machine import machine_info
from benchmarks.profiling import profile_embedded
from benchmarks.suite import ANCHOR_MATRIX, CLOSED_MATRIX, NOPERSIST_MATRIX, Suite

HERE = Path(__file__).resolve().parent


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
        "--only",
        default=None,
        metavar="ROWS",
        help="run only the workloads whose name contains one of these comma-separated parts (any case), e.g. "
        "'mlserver,embedded sync B=100 C=8'; skips the raw-model and storage floors; results go to --out",
    )
    p.add_argument(
        "--no-mlserver", action="store_true", help="skip the MLServer anchor (its rows and targets say 'not run')"
    )
    p.add_argument(
        "--mlserver-cache-dir",
        type=Path,
        default=None,
        help="where the MLServer anchor's virtualenv is built once and kept [${XDG_CACHE_HOME:-~/.cache}/"
        "reportscore-bench]",
    )
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
    complete = not (
        args.quick or args.no_embedded or args.no_distributed or args.no_open_loop or args.no_mlserver or args.only
    )
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
        model_floors: list[dict[str, Any]] = []
        storage_floors: list[dict[str, Any]] = []
        if not args.only:
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
            if suite.wants("floor"):
                suite.guarded("floor", suite.phase_floor)
            suite.guarded("mlserver", suite.phase_mlserver, ANCHOR_MATRIX)
            if not args.no_embedded and suite.wants("embedded", CLOSED_MATRIX + NOPERSIST_MATRIX):
                suite.guarded("embedded", suite.phase_embedded)
            if not args.no_distributed and suite.wants("distributed"):
                suite.guarded("distributed", suite.phase_distributed)
            if not args.no_embedded and any(suite.selected(n) for n in score_cache.names()):
                suite.guarded("score-cache", lambda: score_cache.phase(suite), ())
            if not args.no_embedded and any(suite.selected(n) for n in shadow_cost.names()):
                suite.guarded("shadow", lambda: shadow_cost.phase(suite), ())
            if args.profile:
                try:
                    profile = profile_embedded(suite)
                except Exception as exc:
                    suite.log(f"profile failed: {type(exc).__name__}: {str(exc)[-2000:]}")
                    profile = {"tool": None, "summary_md": f"profiling failed: {type(exc).__name__}"}
        except KeyboardInterrupt:
            # A partial run never replaces a complete report: what was measured goes to --out only.
            results_dirs = {args.out}
            suite.log(f"interrupted: writing what was measured to {args.out}")

    evaluation = targets.evaluate(suite.rows)
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
            "only": args.only,
            "service_src": str(services.SERVICE_SRC) if services.SERVICE_SRC else "working tree (src/)",
            "results_json_name": "results.json",
        },
        "service_config": suite.service_config,
        "mlserver": suite.mlserver,
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
