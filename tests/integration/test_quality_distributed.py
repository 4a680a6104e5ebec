"""The automatic rollback on the distributed deployment: two API processes (each runs the check; one writes the
rollback) and a Celery worker on Redis and PostgreSQL, under load."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2 as httpx
import pytest

from reportscore.settings import Settings
from reportscore.storage.db import Database
from tests.integration.cluster import Cluster
from tests.quality_scenarios import POLICY_ENV, bad_champion_rolled_back

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

COUNTER = re.compile(r"^reportscore_model_auto_rollbacks_total\{[^}]*\} ([0-9.]+)$", re.MULTILINE)


def test_a_bad_champion_is_rolled_back_once_by_one_of_two_api_processes(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    cluster = Cluster(work_dir=tmp_path, database_url=pg_url, broker_url=redis_url, prefix=prefix, **POLICY_ENV)
    db = Database(pg_url)
    try:
        cluster.migrate()
        first = cluster.start_api()
        second = cluster.start_api()
        cluster.start_worker(concurrency=1)
        run = bad_champion_rolled_back(first.url, db, tmp_path, model_name=Settings().model_name)
        counted = sum(
            float(v) for api in (first, second) for v in COUNTER.findall(httpx.get(f"{api.url}/metrics").text)
        )
        logs = cluster.logs()
    finally:
        db.dispose()
        cluster.stop()
    assert counted == 1.0
    assert logs.count("champion rolled back automatically") == 1
    d = run.details
    print(
        f"\n[auto-rollback] distributed: {len(run.results)} jobs under load, 0 failed; roc_auc "
        f"{d['champion_value']:.3f} vs {d['previous_value']:.3f}; rolled back {run.rolled_back_after_s:.2f}s after "
        f"the outcomes that completed the minimum were posted"
    )
