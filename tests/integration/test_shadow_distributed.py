"""Shadows on the distributed deployment: API and Celery workers on Redis and PostgreSQL follow the shadow set set by
the CLI, score after the champion's commit, and a shadow that raises on every batch leaves every job SUCCESS with the
champion's scores."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest

from reportscore.scoring.registration import register_model
from reportscore.settings import Settings
from reportscore.storage.db import Database
from tests.fakes import write_fake_model_dir
from tests.integration.cluster import Cluster, psycopg_url, small_bodies
from tests.model_helpers import tiny_xgboost
from tests.servers import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
RATING = 4.321


def _until(check: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def _shadow_counts(cluster: Cluster, job_ids: list[str]) -> dict[str, int]:
    with psycopg.connect(psycopg_url(cluster.database_url)) as conn:
        rows = conn.execute(
            "SELECT s.model_version, count(*) FROM shadow_scores AS s JOIN reports AS r ON r.id = s.report_id "
            "WHERE r.job_id = ANY(%s) GROUP BY s.model_version",
            (job_ids,),
        ).fetchall()
    return {str(v): int(n) for v, n in rows}


def test_celery_workers_score_shadows_after_the_champion_and_survive_a_broken_one(
    tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    extra = {"REPORTSCORE_MODEL_REFRESH_S": "0.3", "REPORTSCORE_EXTRA_MODEL_FORMATS": '["tests.fakes:FakeFormat"]'}
    cluster = Cluster(work_dir=tmp_path, database_url=pg_url, broker_url=redis_url, prefix=prefix, **extra)
    tiny_xgboost(tmp_path / "challenger.ubj")
    broken_dir = write_fake_model_dir(tmp_path / "broken", raise_on_rating=RATING)
    settings = Settings(
        database_url=pg_url,
        broker_url=redis_url,
        data_dir=tmp_path / "data",
        extra_model_formats=["tests.fakes:FakeFormat"],
    )
    db = Database.from_settings(settings)
    try:
        cluster.migrate()
        api = cluster.start_api()
        cluster.start_worker(concurrency=2)
        register_model(db=db, settings=settings, artifact=tmp_path / "challenger.ubj", version="2.0.0")
        register_model(db=db, settings=settings, artifact=broken_dir / "fake.json", version="9.0.0", format_name="fake")
        for args in (["models", "shadow", "2.0.0"], ["models", "shadow", "9.0.0", "--fraction", "1"]):
            done = run_cli(args, cluster.env)
            assert done.returncode == 0, done.stderr
        assert "2.0.0 (fraction 1), 9.0.0 (fraction 1)" in done.stderr

        # Every worker process follows within the refresh interval: wait for the first shadow scores.
        def warm() -> bool:
            ids = cluster.submit_many(small_bodies(4, seed=1))
            cluster.wait_all_finished(ids, timeout_s=30)
            return _shadow_counts(cluster, ids).get("2.0.0", 0) > 0

        _until(warm, "the workers to start the shadow")
        bodies = [[dict(r, profile_rating=RATING) for r in body] for body in small_bodies(30, reports_per_job=4)]
        ids = cluster.submit_many(bodies)
        final = cluster.wait_all_finished(ids, timeout_s=90)
        assert set(final.values()) == {"SUCCESS"}, final
        cluster.assert_scored_exactly_once(dict(zip(ids, bodies, strict=True)))  # the champion's own scores
        counts = _until(lambda: (c := _shadow_counts(cluster, ids)).get("2.0.0") == 120 and c, "the shadow scores")
        assert "9.0.0" not in counts
        with httpx.Client(base_url=api.url, timeout=30) as http:
            task = http.get(f"/task/{ids[0]}").json()
            assert task["model"]["version"] == "1.0.0"
            compared = http.get("/models/compare", params={"challenger": "2.0.0"}).json()
        assert compared["n_reports"] >= 120
        assert compared["verdict"].startswith("not distinguishable with 0 labelled reports")

        printed = run_cli(["models", "compare", "2.0.0"], cluster.env)
        assert printed.returncode == 0, printed.stderr
        assert json.loads(printed.stdout)["n_reports"] == compared["n_reports"]
        refused = run_cli(["models", "promote", "2.0.0", "--require-better", "auc:0.01"], cluster.env)
        assert refused.returncode == 2
        assert "not promoted" in refused.stderr
        assert "labelled reports" in refused.stderr
        stopped = run_cli(["models", "shadow", "9.0.0", "--off"], cluster.env)
        assert "9.0.0 is no longer a shadow" in stopped.stderr
    finally:
        db.dispose()
        cluster.stop()
