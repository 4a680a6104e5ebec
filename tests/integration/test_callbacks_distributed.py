"""Push callbacks in the distributed deployment: PostgreSQL + Redis + a real Celery worker + two API processes,
delivering to a real receiver. The worker writes the outbox row with the result; the API processes deliver it,
each row once (leases and ``FOR UPDATE SKIP LOCKED``), retrying after failures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import orjson
import psycopg
import pytest

from tests.callback_receiver import SECRET, Receiver, callback_env, documented_verify
from tests.e2e.test_callbacks import wait_callback
from tests.integration.cluster import Cluster, psycopg_url, small_bodies

pytestmark = [pytest.mark.integration]


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]) -> Iterator[Cluster]:
    redis_url, prefix = redis_url_and_prefix
    c = Cluster(work_dir=tmp_path, database_url=pg_url, broker_url=redis_url, prefix=prefix, **callback_env())
    try:
        yield c
    finally:
        c.stop()


def test_callbacks_are_retried_delivered_signed_sent_once_and_survive_kill_9(cluster: Cluster) -> None:
    verify = documented_verify()
    with Receiver([500, 500]) as receiver:
        cluster.migrate()
        apis = [cluster.start_api(), cluster.start_api()]
        cluster.start_worker(concurrency=1)

        # one task: the receiver fails twice, then acknowledges: exactly three deliveries
        resp = httpx.post(
            f"{apis[0].url}/predict", json={"reports": small_bodies(1)[0], "callback_url": receiver.url}, timeout=30
        )
        assert resp.status_code == 202, resp.text
        first = resp.json()["task_id"]
        receiver.wait_for(first, 3)
        task = wait_callback(apis[1].url, first, "delivered")
        assert task["status"] == "SUCCESS"
        assert task["callback"]["attempts"] == 3
        deliveries = receiver.for_task(first)
        assert [d.status for d in deliveries] == [500, 500, 200]
        for delivery in deliveries:
            assert verify(SECRET.encode(), delivery.headers, delivery.body)
            assert orjson.loads(delivery.body) == {k: v for k, v in task.items() if k != "callback"}

        # many tasks through both API processes: each delivered exactly once (no double send)
        ids = []
        for i, body in enumerate(small_bodies(30, seed=5)):
            resp = httpx.post(
                f"{apis[i % 2].url}/submit", json={"reports": body, "callback_url": receiver.url}, timeout=30
            )
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["task_id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(receiver.for_task(t) for t in ids):
            time.sleep(0.1)
        time.sleep(1.5)  # let a double send, if there were one, arrive
        assert {t: len(receiver.for_task(t)) for t in ids} == dict.fromkeys(ids, 1)
        with psycopg.connect(psycopg_url(cluster.database_url)) as conn:
            rows = conn.execute(
                "SELECT status, attempts, count(*) FROM callback_deliveries WHERE job_id = ANY(%s) "
                "GROUP BY status, attempts",
                (ids,),
            ).fetchall()
        assert rows == [("delivered", 1, len(ids))]

        # kill -9 every API process while the receiver fails: a new API process delivers from the outbox
        receiver.default = 500
        resp = httpx.post(
            f"{apis[0].url}/predict", json={"reports": small_bodies(1)[0], "callback_url": receiver.url}, timeout=30
        )
        assert resp.status_code == 202, resp.text
        last = resp.json()["task_id"]
        receiver.wait_for(last, 2)
        for api in apis:
            api.kill()
        failed_before = len(receiver.for_task(last))
        receiver.default = 200
        restarted = cluster.start_api()
        task = wait_callback(restarted.url, last, "delivered")
        deliveries = receiver.for_task(last)
        assert len(deliveries) > failed_before
        assert deliveries[-1].status == 200
        assert verify(SECRET.encode(), deliveries[-1].headers, deliveries[-1].body)
        assert len(deliveries) >= 3
        # The kill can land between the receiver answering the second delivery and the API recording it: only the
        # first failure is sure to be recorded (the second is sent after it), so the count is at least 2.
        assert task["callback"]["attempts"] >= 2
