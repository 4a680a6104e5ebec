"""Distributed mode end to end on the shared services: HTTP → Celery (Redis or RabbitMQ) → worker → PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from reportscore.api.auth import ANONYMOUS_TENANT
from reportscore.api.deps import AppState
from reportscore.app import create_app
from reportscore.jobs import views as task_views
from reportscore.jobs.notifications import RedisPublisher
from reportscore.jobs.views import task_body as _result_body
from reportscore.scoring.service import score_jobs
from reportscore.settings import Settings
from reportscore.storage import migrate
from reportscore.storage.db import Database
from tests.conftest import require
from tests.e2e.test_fast_paths import count_queries
from tests.infra.isolation import delete_rabbitmq_queues, shared_rabbitmq_available
from tests.integration.cluster import Cluster, psycopg_url, small_bodies
from tests.servers import ServiceProcess, run_cli
from tests.switch_load import promote_and_roll_back_under_load

pytestmark = [pytest.mark.integration]
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]) -> Iterator[Cluster]:
    redis_url, prefix = redis_url_and_prefix
    c = Cluster(work_dir=tmp_path, database_url=pg_url, broker_url=redis_url, prefix=prefix)
    try:
        yield c
    finally:
        c.stop()


def test_redis_postgres_end_to_end(cluster: Cluster, redis_url_and_prefix: tuple[str, str]) -> None:
    cluster.migrate()
    api = cluster.start_api()
    cluster.start_worker(concurrency=2)
    cluster.start_worker(concurrency=1)
    bodies = small_bodies(60, reports_per_job=3)
    ids = cluster.submit_many(bodies)
    with httpx.Client(base_url=api.url, timeout=30) as http:
        for task_id in ids:
            data = http.get(f"/task/{task_id}", params={"wait": 20}).json()
            assert data["status"] == "SUCCESS", data
            assert len(data["score"]) == 3
        assert http.get("/task/6a1f1f3e-0b8e-4f0e-8a55-7a0e9b2b1c33").status_code == 404
        ready = http.get("/health/ready").json()
        assert ready["checks"]["broker"] == "ok"
    cluster.assert_scored_exactly_once(dict(zip(ids, bodies, strict=True)))
    # task ids appear in the workers' log lines
    assert any(f'"task_id":"{ids[0]}"' in w.logs() for w in cluster.workers)
    # each worker exports the metrics of all its pool processes on its own port
    finished = 0.0
    for worker in cluster.workers:
        text = httpx.get(f"http://127.0.0.1:{worker.env['REPORTSCORE_WORKER_METRICS_PORT']}/metrics", timeout=5).text
        assert 'reportscore_worker_up{runner="celery"}' in text
        finished += sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('reportscore_jobs_finished_total{status="SUCCESS"}')
        )
    assert finished >= len(ids)

    # Redis holds only this deployment's prefixed keys, and no Celery result keys
    url, prefix = redis_url_and_prefix
    client = redis.Redis.from_url(url)
    keys = [k.decode() for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    client.close()
    assert keys, "the broker should have used prefixed keys"
    assert not [k for k in keys if "celery-task-meta" in k]


def test_long_poll_is_woken_by_redis_pubsub(cluster: Cluster) -> None:
    cluster.migrate()
    api = cluster.start_api()
    cluster.start_worker(concurrency=1)
    with httpx.Client(base_url=api.url, timeout=30) as http:
        t0 = time.monotonic()
        task_id = http.post("/predict", json=small_bodies(1)[0]).json()["task_id"]
        data = http.get(f"/task/{task_id}", params={"wait": 20}).json()
        elapsed = time.monotonic() - t0
    assert data["status"] == "SUCCESS"
    assert elapsed < 2.0, f"long-poll took {elapsed:.2f}s: not woken by the notification"


def test_processes_refuse_an_unmigrated_database(cluster: Cluster) -> None:
    for command in (["serve", "--port", "1"], ["worker"]):
        result = run_cli(command, cluster.env, timeout_s=60)
        assert result.returncode == 2, result.stderr
        assert "reportscore migrate" in result.stderr


def _spawned_children(process: ServiceProcess) -> int:
    """Child processes started by multiprocessing's spawn (uvicorn's API processes, not its resource tracker)."""
    return sum("spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace") for pid in process.children())


@pytest.mark.parametrize("spelling", ["--api-processes", "--workers"])
def test_serve_runs_as_many_api_processes_as_asked(cluster: Cluster, spelling: str) -> None:
    """``--workers`` is the deprecated spelling of ``--api-processes``: it still works and says so."""
    cluster.migrate()
    with ServiceProcess(env=cluster.env, work_dir=cluster.work_dir, extra_args=(spelling, "2")) as api:
        assert httpx.get(f"{api.url}/heartbeat", timeout=10).json() == {"message": "Service Ok"}
        assert _spawned_children(api) == 2
    assert ("`serve --workers` is deprecated" in api.logs()) == (spelling == "--workers")


def test_migrate_is_safe_to_run_concurrently(cluster: Cluster) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: run_cli(["migrate"], cluster.env), range(3)))
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert run_cli(["worker-ping", "--timeout", "0.5"], cluster.env).returncode == 1  # no worker yet


def test_worker_ping_answers_for_a_running_worker(cluster: Cluster) -> None:
    cluster.migrate()
    cluster.start_worker(concurrency=1)
    result = run_cli(["worker-ping"], cluster.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("reportscore-")


def test_rabbitmq_broker_end_to_end(tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]) -> None:
    require(shared_rabbitmq_available(), "RabbitMQ on 127.0.0.1:5672 is needed")
    redis_url, prefix = redis_url_and_prefix
    c = Cluster(
        work_dir=tmp_path,
        database_url=pg_url,
        broker_url=RABBITMQ_URL,
        prefix=prefix,
        REPORTSCORE_REDIS_URL=redis_url,
    )
    try:
        c.migrate()
        api = c.start_api()
        c.start_worker(concurrency=1)
        bodies = small_bodies(20, reports_per_job=2, seed=7)
        ids = c.submit_many(bodies, threads=4)
        with httpx.Client(base_url=api.url, timeout=30) as http:
            for task_id in ids:
                assert http.get(f"/task/{task_id}", params={"wait": 20}).json()["status"] == "SUCCESS"
        c.assert_scored_exactly_once(dict(zip(ids, bodies, strict=True)))
    finally:
        c.stop()
        delete_rabbitmq_queues(RABBITMQ_URL, [c.env["REPORTSCORE_QUEUE_NAME"]])


def test_submit_with_the_broker_down_is_accepted_and_reconciled(
    tmp_path: Path, pg_url: str, throwaway_redis: object
) -> None:
    from tests.infra.throwaway import RedisServer

    assert isinstance(throwaway_redis, RedisServer)
    c = Cluster(
        work_dir=tmp_path,
        database_url=pg_url,
        broker_url=throwaway_redis.url,
        prefix="rs-brokerdown",
        REPORTSCORE_RECONCILE_INTERVAL_S="0.5",
        REPORTSCORE_RECONCILE_PENDING_AGE_S="2",
    )
    try:
        c.migrate()
        api: ServiceProcess = c.start_api()
        throwaway_redis.stop()
        with httpx.Client(base_url=api.url, timeout=10) as http:
            t0 = time.monotonic()
            resp = http.post("/predict", json=small_bodies(1)[0])
            assert resp.status_code == 202
            assert time.monotonic() - t0 < 1.0
            task_id = resp.json()["task_id"]
            ready = http.get("/health/ready")
            assert ready.status_code == 200
            assert ready.json()["checks"]["broker"].startswith("down")
            throwaway_redis.start()
            c.start_worker(concurrency=1)
            data = http.get(f"/task/{task_id}", params={"wait": 30}).json()
        assert data["status"] == "SUCCESS"
        assert "reconciler re-published stranded jobs" in api.logs()
    finally:
        c.stop()


def test_a_woken_worker_claims_pending_jobs_into_one_batch(cluster: Cluster) -> None:
    cluster.migrate()
    cluster.start_api()
    bodies = small_bodies(40, reports_per_job=2, seed=5)
    ids = cluster.submit_many(bodies)  # no worker yet: everything waits in the queue
    cluster.start_worker(concurrency=1)
    final = cluster.wait_all_finished(ids, timeout_s=60)
    assert set(final.values()) == {"SUCCESS"}
    with psycopg.connect(psycopg_url(cluster.database_url)) as conn:
        batches = conn.execute("SELECT count(DISTINCT started_at) FROM jobs").fetchone()
    assert batches is not None
    assert batches[0] <= 5, f"40 pending jobs took {batches[0]} claims: no micro-batching"
    cluster.assert_scored_exactly_once(dict(zip(ids, bodies, strict=True)))


@contextmanager
def _api_process(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str], **overrides: Any
) -> Iterator[tuple[TestClient, AppState, Database]]:
    """A distributed API process in this test (subscribed to finish announcements), and a store handle of its own
    that plays the worker's part and is not seen by the process's query counters."""
    redis_url, prefix = redis_url_and_prefix
    settings = Settings(
        data_dir=tmp_path,
        database_url=pg_url,
        broker_url=redis_url,
        redis_prefix=prefix,
        queue_name=f"{prefix}-scoring",
        reconcile_interval_s=600,
        **overrides,
    )
    db = Database.from_settings(settings)
    migrate.upgrade_to_head(db)
    try:
        with TestClient(create_app(settings)) as client:
            state: AppState = client.app.state.rs  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while not state.notifier.reliable:
                assert time.monotonic() < deadline, "Redis subscription never connected"
                time.sleep(0.05)
            yield client, state, db
    finally:
        db.dispose()


def _score_and_announce(db: Database, state: AppState, redis_url: str, prefix: str, task_id: str) -> None:
    """What a worker does (with the same code): score the job, commit, announce it with its result."""
    outcome = score_jobs(db=db, model=state.registry.current, job_ids=[task_id])
    assert task_id in outcome.owners
    RedisPublisher(redis_url, prefix=prefix).publish(outcome.finished, views=outcome.views, owners=outcome.owners)


def test_distributed_long_poll_waits_without_queries_and_wakes_on_notification(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    # No pending hint: the path of a job accepted by another API process (read first, then wait). With a hint the
    # one read moves to the hint's expiry, inside the window measured here; hinted long-polls are tested by
    # test_distributed_long_poll_of_a_job_accepted_here_never_reads_the_store.
    with _api_process(tmp_path, pg_url, redis_url_and_prefix, pending_hint_s=0) as (client, state, db):
        task_id = client.post("/predict", json=small_bodies(1)[0]).json()["task_id"]
        queries = count_queries(state.db, about=task_id)
        result: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: result.update(r=client.get(f"/task/{task_id}?wait=20")))
        t0 = time.monotonic()
        waiter.start()
        time.sleep(0.5)
        start = len(queries)
        time.sleep(4.5)
        during = queries[start:]
        # now a worker (here: this test, with the same code) finishes the job and announces it
        score_jobs(db=db, model=state.registry.current, job_ids=[task_id])
        RedisPublisher(redis_url, prefix=prefix).publish([task_id])
        waiter.join(timeout=10)
    assert during == [], f"queries during the wait: {during}"
    assert queries, "the listener saw no query at all: it is not measuring anything"
    assert result["r"].status_code == 200
    assert result["r"].json()["status"] == "SUCCESS"
    assert time.monotonic() - t0 < 8


def test_distributed_woken_long_poll_answers_from_the_notification_without_a_query(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    # No pending hint: a job accepted by another API process, whose long-poll reads once before it waits (that read
    # is what shows the listener works). Hinted long-polls: the tests below.
    with _api_process(tmp_path, pg_url, redis_url_and_prefix, pending_hint_s=0) as (client, state, db):
        task_id = client.post("/predict", json=small_bodies(1, reports_per_job=3)[0]).json()["task_id"]
        queries = count_queries(state.db, about=task_id)
        result: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: result.update(r=client.get(f"/task/{task_id}?wait=20")))
        waiter.start()
        time.sleep(0.5)
        start = len(queries)
        _score_and_announce(db, state, redis_url, prefix, task_id)
        waiter.join(timeout=10)
        after_wake = queries[start:]
        # the store's answer, for comparison (this process's cache now holds the task: read the store directly)
        stored = task_views.get_task(db=db, task_id=task_id, owner=ANONYMOUS_TENANT)
    assert queries, "the listener saw no query at all: it is not measuring anything"
    assert after_wake == [], f"the woken long-poll read the store: {after_wake}"
    assert result["r"].status_code == 200
    assert stored is not None
    assert result["r"].json() == _result_body(stored)


def test_distributed_long_poll_of_a_job_accepted_here_never_reads_the_store(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    hint_s = 10.0  # far longer than the scoring below takes, even on a loaded machine
    with _api_process(tmp_path, pg_url, redis_url_and_prefix, pending_hint_s=hint_s) as (client, state, db):
        task_id = client.post("/predict", json=small_bodies(1, reports_per_job=3)[0]).json()["task_id"]
        queries = count_queries(state.db, about=task_id)  # every statement about the job after the submit
        result: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: result.update(r=client.get(f"/task/{task_id}?wait=20")))
        t0 = time.monotonic()
        waiter.start()
        time.sleep(0.3)  # the long-poll is waiting
        _score_and_announce(db, state, redis_url, prefix, task_id)
        waiter.join(timeout=30)
        elapsed = time.monotonic() - t0
        reads = list(queries)
        stored = task_views.get_task(db=state.db, task_id=task_id, owner=ANONYMOUS_TENANT)
    assert reads == [], f"the long-poll of a job accepted here read the store: {reads}"
    assert queries, "the listener saw no query at all (not even the check's own read): it measures nothing"
    assert elapsed < hint_s, f"answered after {elapsed:.1f}s: at the hint's expiry, not woken by the announcement"
    assert result["r"].status_code == 200
    assert stored is not None
    assert result["r"].json() == _result_body(stored)


def test_distributed_long_poll_after_the_job_finished_answers_from_the_announcement(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    with _api_process(tmp_path, pg_url, redis_url_and_prefix) as (client, state, db):
        task_id = client.post("/predict", json=small_bodies(1, reports_per_job=2)[0]).json()["task_id"]
        queries = count_queries(state.db, about=task_id)
        _score_and_announce(db, state, redis_url, prefix, task_id)
        # nobody waits for the job yet, but it was accepted here: the announced result is kept for the client
        deadline = time.monotonic() + 10
        while state.tasks.get(task_id, owner=ANONYMOUS_TENANT) is None:
            assert time.monotonic() < deadline, "the announced result of a job accepted here was not cached"
            time.sleep(0.02)
        assert state.tasks.hint_count() == 0, "the announcement did not drop the job's pending hint"
        long_poll = client.get(f"/task/{task_id}?wait=20")
        plain = client.get(f"/task/{task_id}")
        reads = list(queries)
        stored = task_views.get_task(db=state.db, task_id=task_id, owner=ANONYMOUS_TENANT)
    assert reads == [], f"reading a finished job accepted here went to the store: {reads}"
    assert queries, "the listener saw no query at all (not even the check's own read): it measures nothing"
    assert stored is not None
    assert long_poll.status_code == plain.status_code == 200
    assert long_poll.json() == plain.json() == _result_body(stored)


def test_promote_and_rollback_under_load_with_two_workers(cluster: Cluster, tmp_path: Path) -> None:
    from tests.model_helpers import tiny_xgboost

    refresh_s = 0.5
    cluster.env["REPORTSCORE_MODEL_REFRESH_S"] = str(refresh_s)
    cluster.env["REPORTSCORE_MODEL_STORE_URL"] = (tmp_path / "shared-volume" / "models").as_uri()
    tiny_xgboost(tmp_path / "next.ubj")
    cluster.migrate()
    api = cluster.start_api()
    cluster.start_worker(concurrency=1)
    cluster.start_worker(concurrency=1)
    with httpx.Client(base_url=api.url, timeout=60) as http, (tmp_path / "next.ubj").open("rb") as fh:
        assert http.post("/models", data={"version": "2.0.0"}, files={"artifact": ("n.ubj", fh)}).status_code == 201
    run = promote_and_roll_back_under_load(api.url, body=lambda: small_bodies(1, seed=7)[0], phase_s=4.0)
    delay = run.check(refresh_s=refresh_s)
    for worker in cluster.workers:  # each worker process switched on its own, without a restart
        assert worker.logs().count('"msg":"champion switched"') == 2
    assert (tmp_path / "shared-volume" / "models" / "reportscore-reference" / "2.0.0" / "model.ubj").is_file()
    print(
        f"\n[registry] distributed: {len(run.results)} jobs, 0 failed, 2 workers switched twice each; first job on "
        f"2.0.0 submitted {delay:.2f}s after the promote (refresh {refresh_s}s)"
    )
