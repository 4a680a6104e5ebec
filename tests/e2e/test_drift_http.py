"""Drift and retention through the service: reports scored over HTTP (sync and queued) are counted, GET
/models/drift and /metrics show their PSI against the champion's reference, the CLI reads the same; purge runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reportscore.scoring import synthetic
from reportscore.scoring.features import REPORT_FIELDS
from tests.e2e.conftest import app_client
from tests.servers import run_cli


def _reports(n: int, seed: int) -> list[dict[str, Any]]:
    cols = {k: v.tolist() for k, v in synthetic.generate_reports(n, seed=seed).items()}
    return [{name: cols[name][i] for name in REPORT_FIELDS} for i in range(n)]


def test_scored_reports_show_up_as_drift_over_http_in_metrics_and_in_the_cli(tmp_path: Path) -> None:
    with app_client(tmp_path, drift_min_reports=50) as client:
        for seed in range(3):
            assert client.post("/score", json=_reports(100, seed)).status_code == 200
        task = client.post("/predict", json=_reports(100, 9)).json()["task_id"]
        assert client.get(f"/task/{task}?wait=10").json()["status"] == "SUCCESS"
        assert client.post("/score", params={"persist": "false"}, json=_reports(100, 10)).status_code == 200

        body = client.get("/models/drift", params={"window": "10000h"}).json()  # one window for the whole test
        assert body["model_version"] == "1.0.0"
        (window,) = body["windows"]
        assert window["n_reports"] == 400  # persisted scorings only
        assert set(window["psi"]) == {*REPORT_FIELDS, "score"}
        assert window["status"]["profile_rating"] == "ok"
        assert window["psi"]["score"] < 0.25  # the reference model scoring data like its own holdout
        assert client.get("/models/drift", params={"window": "90m"}).status_code == 422
        at = "2026-01-01T00:00:00Z"
        assert client.get("/models/drift", params={"since": at, "until": at}).json()["windows"] == []  # empty range
        number = client.get("/models/drift", params={"until": "2191"})  # a number is not a time
        assert number.status_code == 422
        assert number.json()["detail"][0]["loc"] == ["query", "until"]
        assert client.get("/models/drift", params={"version": "9.9.9"}).status_code == 404
        hourly = client.get("/models/drift").json()["windows"]  # the default window: 1h
        assert sum(w["n_reports"] for w in hourly) == 400

        client.app.state.monitoring.drift.invalidate()  # type: ignore[attr-defined]  # (read at most once a minute)
        metrics = client.get("/metrics").text
        assert 'reportscore_drift_psi{feature="profile_rating",model_version="1.0.0"}' in metrics
        assert 'reportscore_drift_psi_threshold{level="alert"} 0.25' in metrics

    env = {"REPORTSCORE_DATA_DIR": str(tmp_path / "data"), "REPORTSCORE_DRIFT_MIN_REPORTS": "50"}
    shown = run_cli(["drift", "--json", "--window", "10000h", "--last", "1"], env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["windows"][0]["n_reports"] == 400
    table = run_cli(["drift"], env)
    assert table.returncode == 0, table.stderr
    assert "profile_rating" in table.stdout
    purged = run_cli(["purge", "--older-than", "90d"], env)
    assert purged.returncode == 0, purged.stderr
    assert "purged 0 jobs" in purged.stdout
    refused = run_cli(["purge", "--older-than", "90"], env)
    assert refused.returncode == 2
    assert "expected a number and a unit" in refused.stderr
