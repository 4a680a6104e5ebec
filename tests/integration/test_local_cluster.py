"""``reportscore local-cluster`` (API + 2 workers + Flower on loopback) and ``reportscore flower`` behind auth."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.integration.cluster import small_bodies
from tests.servers import REPORTSCORE, clean_env, free_port, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _wait_http(url: str, timeout_s: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_local_cluster_serves_scores_and_flower_requires_auth(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    port, flower_port = free_port(), free_port()
    env = {
        "REPORTSCORE_DATABASE_URL": pg_url,
        "REPORTSCORE_BROKER_URL": redis_url,
        "REPORTSCORE_REDIS_PREFIX": prefix,
        "REPORTSCORE_QUEUE_NAME": f"{prefix}-scoring",
        "REPORTSCORE_PORT": str(port),
        "REPORTSCORE_FLOWER_PORT": str(flower_port),
        "REPORTSCORE_FLOWER_BASIC_AUTH": "ops:open-sesame",
        "REPORTSCORE_DATA_DIR": str(tmp_path / "data"),
    }
    log = (tmp_path / "cluster.log").open("wb")
    proc = subprocess.Popen([REPORTSCORE, "local-cluster"], env=clean_env(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while _wait_http(f"{base}/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "API never became ready"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as http:
            ids = [http.post("/predict", json=body).json()["task_id"] for body in small_bodies(10, seed=11)]
            for task_id in ids:
                assert http.get(f"/task/{task_id}", params={"wait": 30}).json()["status"] == "SUCCESS"
        flower = f"http://127.0.0.1:{flower_port}"
        assert _wait_http(f"{flower}/").status_code == 401
        authed = httpx.get(f"{flower}/", auth=("ops", "open-sesame"), timeout=5)
        assert authed.status_code == 200
        assert "Flower" in authed.text
        # both workers registered with Flower's view of the cluster
        deadline = time.monotonic() + 30
        while True:
            workers = httpx.get(
                f"{flower}/api/workers", params={"refresh": "1"}, auth=("ops", "open-sesame"), timeout=15
            ).json()
            if len(workers) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(workers) >= 2, workers
        # workers send no task events until Flower turns them on (its enable_events broadcast): then tasks show
        deadline = time.monotonic() + 30
        seen: set[str] = set()
        with httpx.Client(base_url=base, timeout=30) as http:
            while not seen and time.monotonic() < deadline:
                task_id = http.post("/predict", json=small_bodies(1, seed=12)[0]).json()["task_id"]
                assert http.get(f"/task/{task_id}", params={"wait": 30}).json()["status"] == "SUCCESS"
                time.sleep(0.5)
                listed = httpx.get(f"{flower}/api/tasks", auth=("ops", "open-sesame"), timeout=15).json()
                seen = set(listed)
        assert seen, "Flower lists no task: task events were never enabled"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
    assert code == 0, (tmp_path / "cluster.log").read_text()[-3000:]


def test_flower_refuses_to_start_without_auth(pg_url: str) -> None:
    env = {"REPORTSCORE_DATABASE_URL": pg_url, "REPORTSCORE_BROKER_URL": "redis://127.0.0.1:6379/0"}
    result = run_cli(["flower"], env, timeout_s=60)
    assert result.returncode == 2
    assert "REPORTSCORE_FLOWER_BASIC_AUTH" in result.stderr


def test_worker_commands_refuse_embedded_mode(tmp_path: Path) -> None:
    result = run_cli(["worker"], {"REPORTSCORE_DATA_DIR": str(tmp_path)}, timeout_s=60)
    assert result.returncode == 2
    assert "REPORTSCORE_BROKER_URL" in result.stderr
