"""Per-key rate limits are shared by every API process through Redis (distributed mode)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import redis
from fastapi.testclient import TestClient

from reportscore.api.auth import API_KEY_HEADER
from reportscore.app import create_app
from reportscore.security import keys
from reportscore.settings import Settings
from reportscore.storage import migrate
from reportscore.storage.db import Database


def test_two_api_processes_share_one_budget_per_key(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    settings = Settings(
        data_dir=tmp_path,
        database_url=pg_url,
        broker_url=redis_url,
        redis_prefix=prefix,
        queue_name=f"{prefix}-scoring",
        reconcile_interval_s=600,
    )
    db = Database.from_settings(settings)
    migrate.upgrade_to_head(db)
    key, view = keys.create_key(db=db, tenant="t1", name="shared", scopes=["read"], rate=0.5, burst=4)
    db.dispose()
    headers = {API_KEY_HEADER: key}
    url = f"/task/{uuid.uuid4()}"
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        statuses = [(a if i % 2 else b).get(url, headers=headers).status_code for i in range(6)]
        assert statuses == [404, 404, 404, 404, 429, 429], "the two processes did not share one budget"
        limited = a.get(url, headers=headers)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        with redis.Redis.from_url(redis_url) as client:
            assert client.exists(f"{prefix}:ratelimit:{view.prefix}")
            assert 0 < client.pttl(f"{prefix}:ratelimit:{view.prefix}") <= 10_000
        time.sleep(2.1)  # one request every 2 s
        assert b.get(url, headers=headers).status_code == 404
        assert a.get(url, headers=headers).status_code == 429
