"""The moderator's API on the distributed deployment: API and a real Celery worker on Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from reportscore.storage.db import Database
from tests.integration.cluster import Cluster
from tests.moderation_scenarios import feedback_statuses_and_queue, queue_order_pagination_and_reasons

pytestmark = [pytest.mark.integration]


@pytest.fixture
def served(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> Iterator[tuple[httpx.Client, Database]]:
    redis_url, prefix = redis_url_and_prefix
    cluster = Cluster(work_dir=tmp_path, database_url=pg_url, broker_url=redis_url, prefix=prefix)
    db = Database(pg_url)
    try:
        cluster.migrate()
        api = cluster.start_api()
        cluster.start_worker(concurrency=1)
        with httpx.Client(base_url=api.url, timeout=30) as http:
            yield http, db
    finally:
        db.dispose()
        cluster.stop()


def test_moderation_on_postgres_and_celery(served: tuple[httpx.Client, Database]) -> None:
    queue_order_pagination_and_reasons(*served)
    feedback_statuses_and_queue(*served)
