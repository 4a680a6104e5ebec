"""A real ``reportscore worker`` refuses a pickled message (it would run arbitrary code when loaded) and keeps
serving normal jobs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import redis

from reportscore.runners.celery_app import SCORE_TASK, create_celery_app
from reportscore.settings import Settings
from tests.integration.cluster import Cluster, small_bodies

pytestmark = [pytest.mark.integration]


class MakesADirectoryWhenUnpickled:
    """Unpickling this calls ``os.mkdir(path)``: proof, if the directory appears, that the worker ran our code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.path),))


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]) -> Iterator[Cluster]:
    redis_url, prefix = redis_url_and_prefix
    c = Cluster(work_dir=tmp_path, database_url=pg_url, broker_url=redis_url, prefix=prefix)
    try:
        yield c
    finally:
        c.stop()


def test_worker_refuses_a_pickled_message_and_keeps_serving(
    cluster: Cluster, tmp_path: Path, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    cluster.migrate()
    api = cluster.start_api()
    worker = cluster.start_worker(concurrency=1)
    settings = Settings(
        database_url=cluster.database_url,
        broker_url=redis_url,
        redis_prefix=prefix,
        queue_name=cluster.env["REPORTSCORE_QUEUE_NAME"],
        data_dir=tmp_path / "data",
    )
    marker = tmp_path / "pwned"
    producer_app = create_celery_app(settings)
    try:
        # the app's own producer, told to use pickle for this one message (as an attacker with broker access could)
        producer_app.send_task(
            SCORE_TASK, args=[MakesADirectoryWhenUnpickled(marker)], serializer="pickle", queue=settings.queue_name
        )
    finally:
        producer_app.close()

    deadline = time.monotonic() + 30
    while "Refusing to deserialize untrusted content of type pickle" not in worker.logs():
        assert time.monotonic() < deadline, worker.logs()[-3000:]
        time.sleep(0.2)
    assert not marker.exists(), "the worker unpickled the message"

    # the message was acknowledged and dropped, not left to loop
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.llen(f"{prefix}:{settings.queue_name}") == 0
    finally:
        client.close()

    # and the worker still scores normal (JSON) jobs
    assert worker.alive()
    with httpx.Client(base_url=api.url, timeout=30) as http:
        ids = [http.post("/predict", json=body).json()["task_id"] for body in small_bodies(3, seed=5)]
        for task_id in ids:
            assert http.get(f"/task/{task_id}", params={"wait": 20}).json()["status"] == "SUCCESS"
    assert not marker.exists()
