"""Online quality over HTTP, and the automatic rollback of a deliberately bad champion under load (embedded)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
import xgboost
from sklearn.metrics import roc_auc_score

from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.synthetic import generate_labels, generate_reports
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import models as models_repo
from tests.e2e.conftest import app_client
from tests.servers import ServiceProcess, run_cli

FIELDS = ("abuse_type", "report_text_len", "profile_rating", "popularity", "lifetime_matches_created")


def _reports(n: int, *, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Synthetic reports and their true outcomes (1 = actioned), from the generator the reference model learnt."""
    columns = generate_reports(n, seed=seed)
    labels = np.asarray(generate_labels(columns, seed=seed))
    reports = [
        {f: (columns[f][i].item() if hasattr(columns[f][i], "item") else columns[f][i]) for f in FIELDS}
        for i in range(n)
    ]
    return reports, labels


def _feedback(http: Any, ids: list[int], labels: np.ndarray) -> None:
    body = [
        {"id": i, "outcome": "actioned" if y else "dismissed", "reviewer": "mod"}
        for i, y in zip(ids, labels, strict=True)
    ]
    for start in range(0, len(body), 500):
        resp = http.post("/feedback", json=body[start : start + 500])
        assert resp.status_code == 200, resp.text


def _score(http: Any, reports: list[dict[str, Any]]) -> tuple[list[int], list[float], str]:
    task = http.post("/predict", json=reports).json()["task_id"]
    done = http.get(f"/task/{task}", params={"wait": 30}).json()
    assert done["status"] == "SUCCESS", done
    return [r["id"] for r in done["reports"]], done["score"], done["model"]["version"]


def test_metrics_endpoint_and_gauges_follow_outcomes(tmp_path: Path) -> None:
    reports, labels = _reports(300, seed=11)
    with app_client(tmp_path) as client:
        ids, scores, version = _score(client, reports)
        _feedback(client, ids, labels)
        body = client.get("/models/metrics", params={"k": 50}).json()
        assert body["model_name"] == Settings().model_name
        [window] = body["windows"]
        assert window["model_version"] == version
        assert window["labelled"] == 300
        assert window["k"] == 50
        assert window["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=2e-3)
        hourly = client.get("/models/metrics", params={"version": version, "window": 3600}).json()["windows"]
        assert sum(w["labelled"] for w in hourly) == 300
        assert client.get("/models/metrics", params={"window": 60}).status_code == 400
        assert client.get("/models/metrics", params={"since": "2026-01-01T00:00:00"}).status_code == 400
        gauge = f'reportscore_model_quality{{metric="labelled",model_version="{version}"}} 300.0'
        deadline = time.monotonic() + 10  # the gauges are read from the store at most every 5 s
        while gauge not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the quality gauges never showed the outcomes"
            time.sleep(0.2)
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


def _bad_model(path: Path) -> None:
    """An XGBoost model trained on the opposite of the true outcomes: it ranks reports upside down."""
    columns = generate_reports(3000, seed=5)
    y = 1 - np.asarray(generate_labels(columns, seed=5))
    clf = xgboost.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1, random_state=5)
    clf.fit(FeatureSchema.default().encode(columns), y)
    clf.get_booster().feature_names = FeatureSchema.default().names
    clf.save_model(str(path))


@pytest.mark.e2e
@pytest.mark.slow
def test_a_bad_champion_is_rolled_back_by_itself_under_load(tmp_path: Path) -> None:
    _bad_model(tmp_path / "bad.ubj")
    min_labelled, margin, interval_s, refresh_s = 200, 0.1, 0.5, 0.5
    env = {
        "REPORTSCORE_MODEL_REFRESH_S": str(refresh_s),
        "REPORTSCORE_AUTO_ROLLBACK": "true",
        "REPORTSCORE_AUTO_ROLLBACK_MIN_LABELLED": str(min_labelled),
        "REPORTSCORE_AUTO_ROLLBACK_MARGIN": str(margin),
        "REPORTSCORE_AUTO_ROLLBACK_INTERVAL_S": str(interval_s),
    }
    load_reports, _ = _reports(20, seed=99)
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()
    with ServiceProcess(tmp_path / "data", env=env) as service, httpx.Client(base_url=service.url, timeout=60) as http:

        def load() -> None:
            with httpx.Client(base_url=service.url, timeout=30) as c:
                while not stop.is_set():
                    r = c.post("/predict", json=load_reports)
                    if r.status_code != 202:
                        results.append((r.status_code, None))
                        continue
                    done = c.get(f"/task/{r.json()['task_id']}", params={"wait": 20})
                    results.append((done.status_code, done.json().get("status")))

        clients = [threading.Thread(target=load) for _ in range(3)]
        for t in clients:
            t.start()
        try:
            # the champion's record: outcomes for reports it scored
            reports, labels = _reports(400, seed=1)
            ids, _, version = _score(http, reports)
            assert version == "1.0.0"
            _feedback(http, ids, labels)
            with (tmp_path / "bad.ubj").open("rb") as fh:
                created = http.post("/models", data={"version": "2.0.0"}, files={"artifact": ("bad.ubj", fh)})
            assert created.status_code == 201, created.text
            assert http.post("/models/2.0.0/promote").status_code == 200
            deadline = time.monotonic() + 30
            while True:
                ids, _, version = _score(http, reports[:10])
                if version == "2.0.0":
                    break
                assert time.monotonic() < deadline, "2.0.0 never started serving"
            # fewer outcomes than the policy needs: no rollback
            reports, labels = _reports(400, seed=2)
            ids, _, version = _score(http, reports)
            assert version == "2.0.0"
            _feedback(http, ids[: min_labelled - 20], labels[: min_labelled - 20])
            time.sleep(3 * interval_s)  # several checks pass over too few outcomes
            assert http.get("/models").json()["champion"] == "2.0.0"
            fed_at = time.monotonic()
            _feedback(http, ids[min_labelled - 20 :], labels[min_labelled - 20 :])
            while http.get("/models").json()["champion"] != "1.0.0":
                assert time.monotonic() - fed_at < 20 * interval_s, "no automatic rollback"
                time.sleep(0.1)
            rolled_back_after_s = time.monotonic() - fed_at
            deadline = time.monotonic() + 30
            while _score(http, reports[:10])[2] != "1.0.0":
                assert time.monotonic() < deadline, "1.0.0 never came back"
        finally:
            stop.set()
            for t in clients:
                t.join()
        metrics = http.get("/metrics").text
        logs = service.logs()

    assert results, "the load never ran"
    failures = [r for r in results if r != (200, "SUCCESS")]
    assert not failures, failures[:5]
    assert 'reportscore_model_auto_rollbacks_total{metric="roc_auc",model_name="reportscore-reference"} 1.0' in metrics
    assert "champion rolled back automatically" in logs
    db = Database.from_settings(Settings(data_dir=tmp_path / "data"))
    try:
        with db.read() as session:
            latest = models_repo.latest_promotion(session, name=Settings().model_name)
            assert latest is not None
            assert (latest.action, latest.version, latest.previous_version) == ("rollback", "1.0.0", "2.0.0")
            assert latest.promoted_by == "auto-rollback"
            assert latest.reason is not None
            assert "roc_auc" in latest.reason
            details = latest.details
    finally:
        db.dispose()
    assert details is not None
    assert details["champion_labelled"] >= min_labelled
    assert details["previous_labelled"] >= min_labelled
    assert details["previous_value"] - details["champion_value"] > margin
    print(
        f"\n[auto-rollback] embedded: {len(results)} jobs under load, 0 failed; roc_auc "
        f"{details['champion_value']:.3f} vs {details['previous_value']:.3f}; rolled back "
        f"{rolled_back_after_s:.2f}s after the outcome that completed {min_labelled} (check every {interval_s}s)"
    )
