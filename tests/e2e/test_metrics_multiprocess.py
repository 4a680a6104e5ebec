"""Prometheus multiprocess mode with real processes: whichever process answers a scrape reports the sum of all the
processes of its command, and a process that died stops counting as live (its counters stay)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.servers import REPO_ROOT, ServiceProcess, clean_env, free_port

pytestmark = [pytest.mark.e2e]


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200, resp.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def helper(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.metrics_writer", *args],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_one_metrics_endpoint_reports_every_process_of_the_command(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    env = {"REPORTSCORE_METRICS_MULTIPROC_DIR": str(metrics_dir)}
    writer_env = clean_env({"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    with ServiceProcess(tmp_path / "data", env=env) as service:
        # two more processes of the same command (a second API process, a scoring process): one exits without
        # cleaning up (as after kill -9), the other stays alive
        crashed = helper(["writer", "3"], writer_env)
        assert crashed.communicate(timeout=60)[0].strip() == "written"
        alive = helper(["writer", "4", "--hold"], writer_env)
        try:
            assert alive.stdout is not None
            assert alive.stdout.readline().strip() == "written"
            assert httpx.post(f"{service.url}/predict", json=POC_EXAMPLE, timeout=30).status_code == 202
            samples = scrape(f"{service.url}/metrics")
            predict = {"method": "POST", "route": "/predict", "status": "202"}
            assert value(samples, "reportscore_http_requests_total", **predict) == 3 + 4 + 1
            assert value(samples, "reportscore_http_request_duration_seconds_count", **predict) == 3 + 4 + 1
            finished = value(samples, "reportscore_jobs_finished_total", status="SUCCESS")
            assert finished is not None
            assert finished >= 3 + 4  # plus the server's own job once it is scored
            assert value(samples, "reportscore_worker_up", runner="inprocess") == 2  # the server's threads
            assert value(samples, "reportscore_worker_up", runner="celery") == 1  # the dead writer no longer counts
            serving = {"model_name": "writer", "model_version": f"w-{alive.pid}"}
            assert value(samples, "reportscore_model_serving", **serving) == 1
            assert not list(metrics_dir.glob(f"gauge_live*_{crashed.pid}.db"))
            assert list(metrics_dir.glob(f"counter_{crashed.pid}.db"))  # its counts stay
        finally:
            alive.communicate(timeout=30)
        samples = scrape(f"{service.url}/metrics")
        assert value(samples, "reportscore_worker_up", runner="celery") is None  # no live process reports it
        assert value(samples, "reportscore_http_requests_total", **predict) == 3 + 4 + 1
    assert metrics_dir.is_dir()  # a configured directory is the operator's: emptied at the next start, not removed


def test_the_worker_endpoint_sums_its_pool_processes_and_forgets_dead_ones(tmp_path: Path) -> None:
    port = free_port()
    pool = helper(["pool", str(port)], clean_env({"TMPDIR": str(tmp_path)}))
    try:
        assert pool.stdout is not None
        ready, directory, second = pool.stdout.readline().split()
        assert ready == "ready"
        assert Path(directory).parent == tmp_path
        url = f"http://127.0.0.1:{port}/metrics"
        samples = scrape(url)
        assert value(samples, "reportscore_jobs_finished_total", status="SUCCESS") == 2 + 3
        assert value(samples, "reportscore_job_latency_seconds_count", status="SUCCESS") == 2 + 3
        assert value(samples, "reportscore_worker_up", runner="celery") == 1  # the first exited cleanly
        assert value(samples, "reportscore_model_serving", model_name="pool", model_version="p-1") == 1
        os.kill(int(second), signal.SIGKILL)  # a pool process dies without notice (not reaped yet: a zombie)
        for _ in range(50):
            samples = scrape(url)
            if value(samples, "reportscore_worker_up", runner="celery") == 0:
                break
            time.sleep(0.1)
        assert value(samples, "reportscore_worker_up", runner="celery") == 0
        assert value(samples, "reportscore_jobs_finished_total", status="SUCCESS") == 2 + 3
        assert value(samples, "reportscore_store_up") is None  # the queue gauges belong to the API
    finally:
        pool.communicate(timeout=30)
    assert pool.returncode == 0
    assert not Path(directory).exists()  # a private temporary directory goes away with its command
