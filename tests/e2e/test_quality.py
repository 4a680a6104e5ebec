"""Online quality over HTTP, and the automatic rollback of a deliberately bad champion under load (embedded)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from sklearn.metrics import roc_auc_score

from reportscore.settings import Settings
from reportscore.storage.db import Database
from tests.e2e.conftest import app_client
from tests.quality_scenarios import POLICY_ENV, bad_champion_rolled_back, feedback, reports_with_outcomes, score
from tests.servers import ServiceProcess, run_cli


def test_metrics_endpoint_and_gauges_follow_outcomes(tmp_path: Path) -> None:
    reports, labels = reports_with_outcomes(300, seed=11)
    with app_client(tmp_path) as client:
        ids, scores, version = score(client, reports)
        feedback(client, ids, labels)
        body = client.get("/models/metrics", params={"k": 50}).json()
        assert body["model_name"] == Settings().model_name
        [window] = body["windows"]
        assert window["model_version"] == version
        assert window["labelled"] == 300
        assert window["k"] == 50
        assert window["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=2e-3)
        hourly = client.get("/models/metrics", params={"version": version, "window": 3600}).json()["windows"]
        assert sum(w["labelled"] for w in hourly) == 300
        assert client.get("/models/metrics", params={"window": 60}).status_code == 422
        assert client.get("/models/metrics", params={"since": "2026-01-01T00:00:00"}).status_code == 400
        assert client.get("/models/metrics", params={"until": "0.5"}).status_code == 422
        empty = {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
        assert client.get("/models/metrics", params=empty).json()["windows"] == []
        edges = {"since": "0001-01-01T00:00:00+14:00", "until": "9999-12-31T23:59:59-14:00"}
        assert [w["labelled"] for w in client.get("/models/metrics", params=edges).json()["windows"]] == [300]
        gauge = f'reportscore_model_quality{{metric="labelled",model_version="{version}"}} 300.0'
        deadline = time.monotonic() + 10  # the gauges are read from the store at most every 5 s
        while gauge not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the quality gauges never showed the outcomes"
            time.sleep(0.2)
        [row] = client.get("/dashboard/data").json()["quality"]
        assert row["model_version"] == version
        assert row["labelled"] == 300
        assert row["roc_auc"] == pytest.approx(window["roc_auc"], abs=1e-12)
    printed = run_cli(
        ["models", "metrics", "--json", "--k", "50"], env={"REPORTSCORE_DATA_DIR": str(tmp_path / "data")}
    )
    assert printed.returncode == 0, printed.stderr
    [cli_window] = json.loads(printed.stdout)
    assert cli_window["labelled"] == 300
    assert cli_window["roc_auc"] == window["roc_auc"]
    refused = run_cli(["models", "metrics", "--window", "60"], env={"REPORTSCORE_DATA_DIR": str(tmp_path / "data")})
    assert refused.returncode == 2
    assert "multiple of 3600" in refused.stderr


@pytest.mark.e2e
@pytest.mark.slow
def test_a_bad_champion_is_rolled_back_by_itself_under_load(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path / "data", env=POLICY_ENV) as service:
        db = Database.from_settings(Settings(data_dir=tmp_path / "data"))
        try:
            run = bad_champion_rolled_back(service.url, db, tmp_path, model_name=Settings().model_name)
        finally:
            db.dispose()
        metrics = httpx.get(f"{service.url}/metrics").text
    assert 'reportscore_model_auto_rollbacks_total{metric="roc_auc",model_name="reportscore-reference"} 1.0' in metrics
    assert "champion rolled back automatically" in service.logs()
    d = run.details
    print(
        f"\n[auto-rollback] embedded: {len(run.results)} jobs under load, 0 failed; roc_auc "
        f"{d['champion_value']:.3f} vs {d['previous_value']:.3f}; rolled back {run.rolled_back_after_s:.2f}s after "
        f"the outcomes that completed the minimum were posted"
    )
