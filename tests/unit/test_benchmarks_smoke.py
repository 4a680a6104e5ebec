"""The benchmark suite's modules import, and its helpers compute what the tables show (no servers, no load)."""

from __future__ import annotations

import math
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from benchmarks import (
    floor_app,
    loadgen,
    mlserver_anchor,
    model_floor,
    report,
    run,
    sampler,
    services,
    stats,
    storage_floor,
    suite,
    targets,
)

ROOT = Path(__file__).resolve().parents[2]


def test_modules_import() -> None:
    assert callable(run.main)
    assert callable(floor_app.create_floor_app)
    assert callable(loadgen.run_load)
    assert callable(model_floor.measure_all)
    assert callable(services.embedded_server)
    assert callable(sampler.summarize)


@pytest.mark.parametrize("q", [0, 10, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    data = [12.0, 3.5, 7.25, 100.0, 0.5, 42.0, 9.0, 9.0, 15.5, 61.0, 2.0]
    assert stats.percentile(data, q) == pytest.approx(float(np.percentile(data, q)))


def test_percentile_fixed_values() -> None:
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile([5], 99) == 5.0
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError, match=r"0\.\.100"):
        stats.percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds() -> None:
    summary = stats.latency_summary([0.001 * i for i in range(1, 101)])  # 1..100 ms
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["max_ms"] == pytest.approx(100.0)
    assert stats.latency_summary([])["p99_ms"] is None


def test_ratio_and_verdicts() -> None:
    assert stats.ratio(50.0, 200.0) == 0.25
    assert stats.ratio(None, 200.0) is None
    assert stats.ratio(1.0, 0.0) is None
    assert stats.ratio(math.nan, 1.0) is None
    assert stats.meets(0.6, at_least=0.5) is True
    assert stats.meets(120.0, at_most=100.0) is False
    assert stats.meets(None, at_least=0.5) is None
    assert stats.verdict(True, True) == "pass"
    assert stats.verdict(True, False, None) == "fail"
    assert stats.verdict(True, None) == "n/a"
    assert stats.fmt_num(12345.678) == "12,346"
    assert stats.fmt_pct(0.254) == "25%"


def _row(deployment: str, flow: str, batch: int, conc: int, jobs: float, p99: float) -> dict[str, object]:
    return {
        "name": targets.workload_name(deployment, flow, batch, conc),
        "deployment": deployment,
        "flow": flow,
        "batch": batch,
        "concurrency": conc,
        "arrival": "closed",
        "status": "ok",
        "jobs_per_s": jobs,
        "reports_per_s": jobs * batch,
        "latency": {"p50_ms": p99 / 2, "p95_ms": p99, "p99_ms": p99, "max_ms": p99},
        "errors": {},
        "resources": {"peak_rss_mb": 250.0, "service_cpu_pct": 99.0},
        "loadgen_cpu_pct": 20.0,
        "checked": 10,
    }


def test_target_evaluation_against_floors() -> None:
    rows = [
        _row("floor", "async", 1, 64, 2000.0, 40.0),
        _row("embedded", "async", 1, 64, 1200.0, 80.0),  # 60% of the floor, p99 within 100 ms: pass
        _row("floor", "sync", 1, 8, 4000.0, 5.0),
        _row("embedded", "sync", 1, 8, 2000.0, 10.0),  # 50% < 70%: fail
    ]
    evaluation = {e["target"]: e for e in targets.evaluate(rows)}
    first = evaluation["embedded, async B=1, C=64"]
    assert first["ratio"] == pytest.approx(0.6)
    assert first["result"] == "pass"
    assert evaluation["embedded, sync /score B=1, C=8"]["result"] == "fail"
    assert evaluation["distributed, async B=1, C=64"]["result"] == "not run"
    assert evaluation["memory, embedded, XGBoost only, under load"]["result"] == "pass"
    table = "\n".join(report.main_table(rows, targets.evaluate(rows)))
    assert "| embedded async B=1 C=64 | jobs/s | 1,200 | 2,000 | 60% |" in table


def test_targets_against_mlserver_use_its_rows() -> None:
    rows = [
        _row("mlserver", "v2", 100, 8, 300.0, 40.0),  # 30,000 reports/s
        _row("embedded", "sync", 100, 8, 330.0, 45.0),  # 1.1x: pass
        _row("embedded", "sync-nopersist", 100, 8, 500.0, 15.0),  # 1.67x < 2x: fail
        _row("mlserver", "v2", 1, 8, 500.0, 20.0),
        _row("embedded", "sync", 1, 8, 2000.0, 25.0),  # 4x, but p99 25 ms > 20 ms: fail
    ]
    evaluation = {e["target"]: e for e in targets.evaluate(rows)}
    durable = evaluation["vs MLServer: durable /score B=100, C=8"]
    assert durable["floor"] == pytest.approx(30_000.0)
    assert durable["ratio"] == pytest.approx(1.1)
    assert durable["result"] == "pass"
    assert evaluation["vs MLServer: /score?persist=false B=100, C=8"]["result"] == "fail"
    single = evaluation["vs MLServer: durable /score B=1, C=8"]
    assert (single["ratio"], single["result"]) == (pytest.approx(4.0), "fail")
    assert evaluation["embedded, sync /score B=100, C=8"]["result"] == "n/a"  # no floor row in this run
    anchor_rows = {"status": "ok", "version": "1.7.1", "max_abs_diff": 0.0, "agreement_reports": 1000}
    table = "\n".join(report.anchor_table(rows, targets.evaluate(rows), anchor_rows))
    assert "| embedded sync B=100 C=8 | reports/s | 33,000 | 30,000 | 1.10x |" in table
    assert "| mlserver v2 B=1 C=8 | req/s | 500 |" in table
    assert report.anchor_table([], [], None) == ["MLServer anchor: not run."]
    skipped = report.anchor_table([], targets.evaluate([]), {"status": "not run (--no-mlserver)"})
    assert skipped[0] == "MLServer anchor: not run (--no-mlserver)."
    assert "| embedded sync B=1 C=8 | req/s | - | - | - | - |  | >= 3x MLServer's req/s" in "\n".join(skipped)


def test_v2_answers_give_the_positive_class() -> None:
    answer = {"outputs": [{"name": "predict_proba", "shape": [2, 2], "datatype": "FP32", "data": [0.9, 0.1, 0.3, 0.7]}]}
    assert loadgen.v2_scores(answer) == pytest.approx([0.1, 0.7])
    assert loadgen.v2_scores({"outputs": [{"name": "predict", "shape": [2], "data": [0, 1]}]}) is None
    assert loadgen.v2_scores({"outputs": [{"name": "predict_proba", "shape": [2, 2], "data": [0.5]}]}) is None
    body = mlserver_anchor.infer_body(np.array([[1.0, 2.0], [3.0, 4.5]], dtype=np.float32))
    request = orjson.loads(body)
    assert request["inputs"][0] | {"name": "input-0"} == {
        "name": "input-0",
        "shape": [2, 2],
        "datatype": "FP32",
        "data": [1.0, 2.0, 3.0, 4.5],
    }
    assert request["outputs"] == [{"name": "predict_proba"}]


def test_mlserver_venv_is_named_after_its_pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = mlserver_anchor.venv_dir()
    assert first.parent == tmp_path / "reportscore-bench"
    monkeypatch.setattr(mlserver_anchor, "PINS", (*mlserver_anchor.PINS[:-1], "xgboost==3.1.0"))
    assert mlserver_anchor.venv_dir() != first


def test_only_selects_workloads_by_name_parts() -> None:
    args = run.parse_args(["--only", "mlserver, embedded sync B=1 C=8", "--no-distributed"])
    chosen = suite.Suite(args, lambda coro: None)
    assert chosen.selected("mlserver v2 B=100 C=8")
    assert chosen.selected("Embedded sync B=1 C=8")
    assert not chosen.selected("embedded sync B=100 C=8")
    # the profiled instance repeats the embedded workloads the selection names, and only those
    assert chosen.selected("embedded-profiled sync B=1 C=8")
    assert not chosen.selected("embedded-profiled async B=1 C=64")
    assert chosen.wants("embedded")
    assert not chosen.wants("floor")
    assert not chosen.wants("distributed")
    assert suite.Suite(run.parse_args([]), lambda coro: None).selected("anything")


def test_an_anchor_that_fails_to_start_leaves_its_rows_not_run() -> None:
    failing = suite.Suite(run.parse_args([]), lambda coro: None)

    def phase() -> None:
        raise RuntimeError("mlserver exited:\nno such model")

    failing.guarded("mlserver", phase, suite.ANCHOR_MATRIX)
    assert [(r["name"], r["status"]) for r in failing.rows] == [
        ("mlserver v2 B=1 C=8", "not run: RuntimeError mlserver exited:"),
        ("mlserver v2 B=100 C=8", "not run: RuntimeError mlserver exited:"),
    ]
    assert failing.mlserver == {"status": "not run: RuntimeError mlserver exited:"}


def test_storage_floor_measures_the_service_write_path() -> None:
    from reportscore.scoring.synthetic import sample_reports

    measured = storage_floor.measure(sample_reports(100, seed=1), cpus=None, seconds=0.1, grown_reports=3200)
    rows = {(r["flow"], r["batch"]): r for r in measured if not r.get("stored_reports")}
    assert set(rows) == {(f, b) for f in ("async", "sync") for b in storage_floor.BATCHES}
    grown = [r for r in measured if r.get("stored_reports")]
    assert [(r["stored_reports"], r["queue_index"]) for r in grown] == [(3200, True), (3200, False)]
    assert all(r["cpu_us_per_job"] > 0 for r in grown)
    for (flow, batch), row in rows.items():
        assert row["cpu_us_per_job"] > 0
        assert row["cpu_us_per_report"] == pytest.approx(row["cpu_us_per_job"] / batch)
        if flow == "async":
            assert row["cpu_us_per_job"] == pytest.approx(row["submit_us_per_job"] + row["result_us_per_job"])
    # a 100-report job costs the store more than a 1-report one, less than 100 of them
    assert rows[("sync", 1)]["cpu_us_per_job"] < rows[("sync", 100)]["cpu_us_per_job"]
    assert rows[("sync", 100)]["cpu_us_per_job"] < 100 * rows[("sync", 1)]["cpu_us_per_job"]


def test_budget_bounds_the_reachable_ratio() -> None:
    rows = [_row("floor", "sync", 1, 8, 5000.0, 3.0), _row("floor", "async", 100, 64, 1000.0, 50.0)]
    results = {
        "workloads": rows,
        "storage_floors": [
            {
                "flow": "sync",
                "batch": 1,
                "jobs_per_transaction": 16,
                "cpu_us_per_job": 100.0,
                "cpu_us_per_report": 100.0,
            },
            {
                "flow": "async",
                "batch": 100,
                "jobs_per_transaction": 16,
                "cpu_us_per_job": 900.0,
                "cpu_us_per_report": 9.0,
            },
        ],
        "model_floors": [
            {"threads": 1, "batch": 1000, "predict_rows_per_s": 500_000.0},  # 2 µs a row at best
            {"threads": 1, "batch": 1, "predict_rows_per_s": 4_000.0},
            {"threads": 2, "batch": 1000, "predict_rows_per_s": 5_000_000.0},  # not the service's setting
        ],
    }
    budget = {b["target"]: b for b in report.budget_rows(results)}
    assert set(budget) == {"embedded, sync /score B=1, C=8", "embedded, async B=100, C=64"}
    sync = budget["embedded, sync /score B=1, C=8"]
    assert sync["floor_us_per_job"] == pytest.approx(200.0)
    assert sync["budget_us_per_job"] == pytest.approx(200.0 / 0.7)
    assert sync["least_us_per_job"] == pytest.approx(200.0 + 100.0 + 2.0)
    assert sync["ceiling_ratio"] == pytest.approx(200.0 / 302.0)
    bulk = budget["embedded, async B=100, C=64"]
    assert bulk["least_us_per_job"] == pytest.approx(1000.0 + 900.0 + 200.0)
    assert "| embedded, async B=100, C=64 (≥ 50%) | 2,000 µs |" in "\n".join(report.budget_table(results))


def test_budget_against_mlserver_counts_the_grown_store() -> None:
    rows = [_row("floor", "sync", 100, 8, 1000.0, 5.0), _row("mlserver", "v2", 100, 8, 300.0, 20.0)]
    store = {"flow": "sync", "batch": 100, "jobs_per_transaction": 16, "cpu_us_per_report": 0.0}
    results = {
        "workloads": rows,
        "storage_floors": [
            {**store, "cpu_us_per_job": 600.0},
            {**store, "cpu_us_per_job": 3000.0, "stored_reports": 400_000, "queue_index": True},
            {**store, "cpu_us_per_job": 1500.0, "stored_reports": 400_000, "queue_index": False},
        ],
        "model_floors": [{"threads": 1, "batch": 1000, "predict_rows_per_s": 500_000.0}],
    }
    budget = {b["target"]: b for b in report.budget_rows(results)}
    anchor = budget["vs MLServer: durable /score B=100, C=8"]
    assert anchor["store_us_per_job"] == 3000.0  # the grown store, with its queue index
    assert anchor["least_us_per_job"] == pytest.approx(1000.0 + 3000.0 + 200.0)
    assert anchor["ceiling_ratio"] == pytest.approx((1e6 / 300.0) / 4200.0)
    table = "\n".join(report.budget_table(results))
    assert "| vs MLServer: durable /score B=100, C=8 (≥ 1x MLServer) | 3,333 µs |" in table
    assert "3,000 µs (400,000 stored)" in table
    assert f"{(1e6 / 300.0) / 4200.0:.2f}x |" in table


def test_score_check_tolerance() -> None:
    body = loadgen.Body(b"[]", 2, (0.25, 0.5))
    assert loadgen.check_scores(body, [0.25, 0.5 + 5e-7])
    assert not loadgen.check_scores(body, [0.25, 0.5 + 5e-6])
    assert not loadgen.check_scores(body, [0.25])
    assert loadgen.check_scores(loadgen.Body(b"[]", 2, None), [0.5, 0.5])


def test_sampler_summary_skips_parked_threads() -> None:
    folded = "\n".join(
        [
            "scoring;_bootstrap (threading.py);score_jobs (service.py);predict (xgboost_native.py) 30",
            "scoring;_bootstrap (threading.py);score_jobs (service.py);do_commit (default.py) 10",
            "scoring;_bootstrap (threading.py);_worker (thread.py) 60",
        ]
    )
    text = sampler.summarize(folded)
    assert "[scoring] 40 busy samples of 100 (40%)" in text
    assert "75.0%  predict (xgboost_native.py)" in text
    assert "every busy sample is under: score_jobs (service.py)" in text


BURNER = """
import pathlib, sys, threading, time
done = pathlib.Path(sys.argv[1])

def burn_cpu():
    while not done.exists():
        sum(i * i for i in range(10_000))
        time.sleep(0.001)  # like a server thread, not a pure spinner that starves the profiler's own thread

worker = threading.Thread(target=burn_cpu, name="burner")
worker.start()
pathlib.Path(sys.argv[2]).touch()  # running: the test may start profiling
worker.join(timeout=60)
"""


def test_cpu_profile_writes_one_profile_per_window(tmp_path: Path) -> None:
    (tmp_path / "burner.py").write_text(BURNER)
    done, control = tmp_path / "done", tmp_path / "ctl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    ready = tmp_path / "ready"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.cpu_profile",
        "--control",
        str(control),
        "-m",
        "burner",
        str(done),
        str(ready),
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for name in ("first", "second"):  # the same process, profiled twice
            target = tmp_path / f"{name}.pstat"
            Path(f"{control}.start").write_text(str(target))
            time.sleep(0.5)
            Path(f"{control}.stop").touch()
            deadline = time.monotonic() + 30
            while not target.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert target.exists(), f"{name}: no profile written"
            summary = Path(f"{target}.txt").read_text()
            assert "%  burner\n" in summary  # the thread, by name
            assert "burner.py" in summary  # and the code that used the CPU
            assert pstats.Stats(str(target)).get_stats_profile().func_profiles
    finally:
        done.touch()
        proc.wait(timeout=30)
    assert proc.returncode == 0
