"""The real service as a process: the PoC example over HTTP, kill -9 recovery, and SIGTERM drain."""

from __future__ import annotations

import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest

from reportscore.scoring.registry import load_model_dir
from reportscore.settings import Settings
from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.servers import ServiceProcess

pytestmark = [pytest.mark.e2e]


def random_reports(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "abuse_type": "MSG" if rng.random() < 0.6 else "PRF",
            "report_text_len": int(rng.integers(0, 3000)),
            "profile_rating": float(rng.uniform(0, 10)),
            "popularity": int(rng.integers(0, 6)),
            "lifetime_matches_created": int(rng.integers(0, 10_000)),
        }
        for _ in range(n)
    ]


def _db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "reportscore.db", timeout=10)


def _status_counts(data_dir: Path) -> dict[str, int]:
    with _db(data_dir) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())


def test_poc_curl_example_over_real_http(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with ServiceProcess(data_dir) as service, httpx.Client(base_url=service.url, timeout=30) as http:
        resp = http.post("/submit", json=POC_EXAMPLE)
        assert resp.status_code == 202
        task_id = resp.json()["task_id"]
        result = http.get(f"/task/{task_id}", params={"wait": 10}).json()
        assert result["status"] == "SUCCESS"
        assert len(result["score"]) == 2
        assert http.get("/heartbeat").json() == {"message": "Service Ok"}
    # afterwards, the store holds typed rows for exactly this job
    with _db(data_dir) as conn:
        rows = conn.execute(
            "SELECT typeof(r.report_text_len), typeof(r.profile_rating), typeof(s.score), s.model_version "
            "FROM reports AS r JOIN report_scores AS s ON s.report_id = r.id WHERE r.job_id = ? ORDER BY r.position",
            (task_id,),
        ).fetchall()
    assert rows == [("integer", "real", "real", result["model"]["version"])] * 2
    # one structured JSON log line per request, carrying the task id
    assert f'"task_id":"{task_id}"' in service.logs()


def _submit_all(url: str, bodies: list[list[dict[str, Any]]]) -> list[str]:
    def post(body: list[dict[str, Any]]) -> str:
        resp = httpx.post(f"{url}/predict", json=body, timeout=60)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["task_id"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(post, bodies))


def _assert_all_scored_once(data_dir: Path, accepted: dict[str, list[dict[str, Any]]]) -> None:
    model = load_model_dir(Settings().model_path)
    with _db(data_dir) as conn:
        for task_id, reports in accepted.items():
            status, n_reports, error = conn.execute(
                "SELECT status, n_reports, error FROM jobs WHERE id = ?", (task_id,)
            ).fetchone()
            assert status == "SUCCESS", (task_id, status, error)
            scores = conn.execute(
                "SELECT r.position, s.score FROM reports AS r LEFT JOIN report_scores AS s ON s.report_id = r.id "
                "WHERE r.job_id = ? ORDER BY r.position",
                (task_id,),
            ).fetchall()
            assert [p for p, _ in scores] == list(range(len(reports)))  # exactly one row per report
            assert n_reports == len(reports)
            expected = model.model.predict(model.schema.encode_reports(reports))
            np.testing.assert_allclose([s for _, s in scores], expected, atol=1e-6)


@pytest.mark.slow
def test_kill_9_while_jobs_are_queued_and_running_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"REPORTSCORE_WORKER_THREADS": "1", "REPORTSCORE_BATCH_MAX_REPORTS": "3000"}
    bodies = [random_reports(3000, seed) for seed in range(40)]
    service = ServiceProcess(data_dir, env=env).start()
    try:
        ids = _submit_all(service.url, bodies)
        accepted = dict(zip(ids, bodies, strict=True))
        # kill at a moment when a batch is mid-scoring and more jobs are queued
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            counts = _status_counts(data_dir)
            if counts.get("STARTED", 0) >= 1 and counts.get("PENDING", 0) >= 1:
                break
            time.sleep(0.005)
        service.kill()
    finally:
        service.kill()
    at_kill = _status_counts(data_dir)
    assert at_kill.get("PENDING", 0) >= 1, at_kill
    assert at_kill.get("STARTED", 0) >= 1, at_kill

    with ServiceProcess(data_dir, env=env) as restarted, httpx.Client(base_url=restarted.url, timeout=30) as http:
        for task_id in ids:
            assert http.get(f"/task/{task_id}", params={"wait": 30}).json()["status"] == "SUCCESS"
        assert '"msg":"recovered unfinished jobs"' in restarted.logs()
    _assert_all_scored_once(data_dir, accepted)


@pytest.mark.slow
def test_sigterm_finishes_in_flight_work_and_keeps_the_rest(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"REPORTSCORE_WORKER_THREADS": "1", "REPORTSCORE_BATCH_MAX_REPORTS": "3000"}
    bodies = [random_reports(3000, 100 + seed) for seed in range(30)]
    service = ServiceProcess(data_dir, env=env).start()
    ids = _submit_all(service.url, bodies)
    deadline = time.monotonic() + 30
    while _status_counts(data_dir).get("STARTED", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    # uvicorn drains, runs the lifespan shutdown, then re-raises SIGTERM so the exit status says why it stopped
    assert service.terminate(timeout_s=60) in (0, -signal.SIGTERM)
    after = _status_counts(data_dir)
    assert after.get("STARTED", 0) == 0, f"in-flight jobs were not finished before exit: {after}"
    assert '"msg":"shutdown complete"' in service.logs()

    with ServiceProcess(data_dir, env=env) as restarted, httpx.Client(base_url=restarted.url, timeout=30) as http:
        for task_id in ids:
            assert http.get(f"/task/{task_id}", params={"wait": 30}).json()["status"] == "SUCCESS"
    _assert_all_scored_once(data_dir, dict(zip(ids, bodies, strict=True)))
