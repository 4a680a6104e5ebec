"""A remote model in the distributed deployment (API, Celery worker, PostgreSQL, Redis) against a real MLServer:
registered with ``--remote``, promoted, MLServer killed mid-load and started again (every job ends SUCCESS, each
report scored once with the reference model's score), rolled back to the local model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest
from benchmarks import mlserver_anchor
from benchmarks.services import HttpServer

from reportscore.reference_model import REFERENCE_MODEL_DIR
from tests.infra.throwaway import PostgresServer, RedisServer
from tests.integration.cluster import FAST_RECOVERY, Cluster, psycopg_url, small_bodies
from tests.mlserver import kill, mlserver, restart
from tests.servers import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

REMOTE_ENV = {
    **FAST_RECOVERY,
    "REPORTSCORE_MAX_ATTEMPTS": "60",
    "REPORTSCORE_MODEL_REFRESH_S": "0.2",
    "REPORTSCORE_REMOTE_RETRIES": "1",
    "REPORTSCORE_REMOTE_BACKOFF_BASE_S": "0.05",
    "REPORTSCORE_REMOTE_BREAKER_FAILURES": "3",
    "REPORTSCORE_REMOTE_BREAKER_RESET_S": "0.5",
}


@pytest.fixture
def servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    with PostgresServer() as pg, RedisServer() as rd:
        yield pg, rd


def _cli(cluster: Cluster, *args: str) -> str:
    done = run_cli(list(args), cluster.env)
    assert done.returncode == 0, done.stderr
    return done.stderr


def _serving(url: str, version: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    body = small_bodies(1)[0]
    while True:
        answer = httpx.post(f"{url}/score", params={"persist": "false"}, json=body, timeout=10)
        if answer.status_code == 200 and answer.json()["model"]["version"] == version:
            return
        assert time.monotonic() < deadline, f"{version} never started serving: {answer.text}"
        time.sleep(0.1)


def _max_attempts(cluster: Cluster, ids: list[str]) -> int:
    with psycopg.connect(psycopg_url(cluster.database_url)) as conn:
        row = conn.execute("SELECT max(attempts) FROM jobs WHERE id = ANY(%s)", (ids,)).fetchone()
    return int(row[0] or 0) if row else 0


def test_a_remote_champion_survives_an_outage_in_the_distributed_deployment(
    tmp_path: Path, servers: tuple[PostgresServer, RedisServer]
) -> None:
    pg, rd = servers
    cluster = Cluster(
        work_dir=tmp_path,
        database_url=pg.create_database("reportscore"),
        broker_url=rd.url,
        prefix="rsremote",
        **REMOTE_ENV,
    )
    with mlserver(tmp_path / "mlserver") as server:
        cluster.migrate()
        try:
            _run(cluster, server)
        finally:
            cluster.stop()


def _run(cluster: Cluster, server: HttpServer) -> None:
    t0 = time.monotonic()

    def phase(name: str) -> None:
        print(f"remote model, distributed: {name} at {time.monotonic() - t0:.1f} s")  # -s shows the figures

    url = f"{server.url}/v2/models/{mlserver_anchor.MODEL_NAME}"
    out = _cli(cluster, "models", "register", "--remote", url, "--output", mlserver_anchor.OUTPUT, "--version", "r-1")
    assert "(remote_v2" in out
    api = cluster.start_api()
    cluster.start_worker(concurrency=1)
    _cli(cluster, "models", "promote", "r-1")
    _serving(api.url, "r-1")
    phase("r-1 serving")

    bodies = small_bodies(30, reports_per_job=3, seed=9)
    first = cluster.submit_many(bodies[:10], threads=2)
    kill(server)
    during = cluster.submit_many(bodies[10:20], threads=2)
    deadline = time.monotonic() + 60
    while _max_attempts(cluster, during) < 2:  # the outage sent jobs round again
        assert time.monotonic() < deadline, f"no job was retried during the outage:\n{cluster.logs()[-3000:]}"
        time.sleep(0.1)
    phase("a job retried during the outage")
    restart(server)
    phase("MLServer back")
    after = cluster.submit_many(bodies[20:], threads=2)
    ids = first + during + after
    statuses = cluster.wait_all_finished(ids, timeout_s=120)
    assert set(statuses.values()) == {"SUCCESS"}, statuses
    phase("every job finished")
    cluster.assert_scored_exactly_once(dict(zip(ids, bodies, strict=True)), model_dir=REFERENCE_MODEL_DIR)
    with psycopg.connect(psycopg_url(cluster.database_url)) as conn:
        versions = conn.execute(
            "SELECT DISTINCT s.model_version FROM report_scores AS s JOIN reports AS r ON r.id = s.report_id "
            "WHERE r.job_id = ANY(%s)",
            (ids,),
        ).fetchall()
    assert versions == [("r-1",)]

    _cli(cluster, "models", "rollback")
    _serving(api.url, "1.0.0")
    kill(server)  # the local model needs no endpoint
    [last] = cluster.submit_many(small_bodies(1, seed=10), threads=1)
    assert cluster.wait_all_finished([last], timeout_s=60) == {last: "SUCCESS"}
    phase("rolled back")
