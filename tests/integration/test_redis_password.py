"""A password-protected Redis (``requirepass``) works as the broker and for long-poll notifications, and the
password never reaches a log line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
import redis

from tests.infra.throwaway import HOST, RedisServer
from tests.integration.cluster import Cluster, small_bodies

pytestmark = [pytest.mark.integration]

PASSWORD = "s3cret-broker-pw"


class PasswordRedis(RedisServer):
    """A throwaway ``redis-server --requirepass``."""

    def __init__(self) -> None:
        super().__init__(extra_args=["--requirepass", PASSWORD])

    @property
    def url(self) -> str:
        return f"redis://:{PASSWORD}@{HOST}:{self.port}/0"

    def _ping(self) -> bool:
        try:
            with self.client(password=PASSWORD, socket_timeout=0.5, socket_connect_timeout=0.5) as c:
                return bool(c.ping())
        except redis.exceptions.RedisError:
            return False


@pytest.fixture
def password_redis() -> Iterator[PasswordRedis]:
    with PasswordRedis() as server:
        yield server


def test_password_protected_redis_as_broker_and_notifications(
    tmp_path: Path, pg_url: str, password_redis: PasswordRedis
) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError), password_redis.client() as anonymous:
        anonymous.ping()  # the server really refuses clients without the password

    cluster = Cluster(work_dir=tmp_path, database_url=pg_url, broker_url=password_redis.url, prefix="rstest-pw")
    try:
        cluster.migrate()
        api = cluster.start_api()
        cluster.start_worker(concurrency=1)
        with httpx.Client(base_url=api.url, timeout=30) as http:
            ready = http.get("/health/ready").json()
            assert ready["checks"]["broker"] == "ok", ready
            ids = [http.post("/predict", json=body).json()["task_id"] for body in small_bodies(5, seed=3)]
            for task_id in ids:
                assert http.get(f"/task/{task_id}", params={"wait": 20}).json()["status"] == "SUCCESS"
        with password_redis.client(password=PASSWORD) as client:
            assert client.pubsub_numsub("rstest-pw:jobs-done")[0][1] >= 1, "the API is not subscribed"
        assert PASSWORD not in cluster.logs()
    finally:
        cluster.stop()
