"""An automatic rollback of a deliberately bad champion under load, shared by the embedded (e2e) and distributed
(integration) tests: outcomes for the reports each version scored go through ``POST /feedback``."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import xgboost

from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.synthetic import generate_labels, generate_reports
from reportscore.storage.db import Database
from reportscore.storage.repositories import models as models_repo

MIN_LABELLED = 200
MARGIN = 0.1
INTERVAL_S = 0.5
REFRESH_S = 0.5
POLICY_ENV = {
    "REPORTSCORE_MODEL_REFRESH_S": str(REFRESH_S),
    "REPORTSCORE_AUTO_ROLLBACK": "true",
    "REPORTSCORE_AUTO_ROLLBACK_MIN_LABELLED": str(MIN_LABELLED),
    "REPORTSCORE_AUTO_ROLLBACK_MARGIN": str(MARGIN),
    "REPORTSCORE_AUTO_ROLLBACK_INTERVAL_S": str(INTERVAL_S),
    # This scenario is about the quality trigger; the drift trigger has its own test on the store.
    "REPORTSCORE_AUTO_ROLLBACK_ON_DRIFT": "false",
}

FIELDS = ("abuse_type", "report_text_len", "profile_rating", "popularity", "lifetime_matches_created")


def reports_with_outcomes(n: int, *, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Synthetic reports and their true outcomes (1 = actioned), from the generator the reference model learnt."""
    columns = generate_reports(n, seed=seed)
    labels = np.asarray(generate_labels(columns, seed=seed))
    reports = [
        {f: (columns[f][i].item() if hasattr(columns[f][i], "item") else columns[f][i]) for f in FIELDS}
        for i in range(n)
    ]
    return reports, labels


def feedback(http: Any, ids: list[int], labels: np.ndarray) -> None:
    body = [
        {"id": i, "outcome": "actioned" if y else "dismissed", "reviewer": "mod"}
        for i, y in zip(ids, labels, strict=True)
    ]
    for start in range(0, len(body), 500):
        resp = http.post("/feedback", json=body[start : start + 500])
        assert resp.status_code == 200, resp.text


def score(http: Any, reports: list[dict[str, Any]]) -> tuple[list[int], list[float], str]:
    task = http.post("/predict", json=reports).json()["task_id"]
    done = http.get(f"/task/{task}", params={"wait": 30}).json()
    assert done["status"] == "SUCCESS", done
    return [r["id"] for r in done["reports"]], done["score"], done["model"]["version"]


def bad_model(path: Path) -> None:
    """An XGBoost model trained on the opposite of the true outcomes: it ranks reports upside down."""
    columns = generate_reports(3000, seed=5)
    y = 1 - np.asarray(generate_labels(columns, seed=5))
    clf = xgboost.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1, random_state=5)
    clf.fit(FeatureSchema.default().encode(columns), y)
    clf.get_booster().feature_names = FeatureSchema.default().names
    clf.save_model(str(path))


@dataclass
class RollbackRun:
    results: list[tuple[int, str | None]]
    details: dict[str, Any]
    rolled_back_after_s: float


def bad_champion_rolled_back(base_url: str, db: Database, tmp_path: Path, *, model_name: str) -> RollbackRun:
    """Under load: outcomes for the champion, promote a bad model, too few outcomes (no rollback), enough (rollback,
    the old champion serves again); asserts the promotion history's record and no failed request."""
    bad_model(tmp_path / "bad.ubj")
    load_reports, _ = reports_with_outcomes(20, seed=99)
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as c:
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
        with httpx.Client(base_url=base_url, timeout=60) as http:
            reports, labels = reports_with_outcomes(400, seed=1)
            ids, _, version = score(http, reports)
            assert version == "1.0.0"
            feedback(http, ids, labels)
            with (tmp_path / "bad.ubj").open("rb") as fh:
                created = http.post("/models", data={"version": "2.0.0"}, files={"artifact": ("bad.ubj", fh)})
            assert created.status_code == 201, created.text
            assert http.post("/models/2.0.0/promote").status_code == 200
            deadline = time.monotonic() + 30
            while score(http, reports[:10])[2] != "2.0.0":
                assert time.monotonic() < deadline, "2.0.0 never started serving"
            reports, labels = reports_with_outcomes(400, seed=2)
            ids, _, version = score(http, reports)
            assert version == "2.0.0"
            few = MIN_LABELLED - 20
            feedback(http, ids[:few], labels[:few])
            time.sleep(3 * INTERVAL_S)  # several checks pass over too few outcomes
            assert http.get("/models").json()["champion"] == "2.0.0"
            fed_at = time.monotonic()
            feedback(http, ids[few:], labels[few:])
            while http.get("/models").json()["champion"] != "1.0.0":
                assert time.monotonic() - fed_at < 20 * INTERVAL_S, "no automatic rollback"
                time.sleep(0.1)
            rolled_back_after_s = time.monotonic() - fed_at
            deadline = time.monotonic() + 30
            while score(http, reports[:10])[2] != "1.0.0":
                assert time.monotonic() < deadline, "1.0.0 never came back"
    finally:
        stop.set()
        for t in clients:
            t.join()
    assert results, "the load never ran"
    failures = [r for r in results if r != (200, "SUCCESS")]
    assert not failures, failures[:5]
    with db.read() as session:
        history = models_repo.history(session, name=model_name)
        rows = [(p.action, p.version, p.previous_version, p.promoted_by) for p in history]
        latest = history[-1]
        reason, details = latest.reason, latest.details
    assert rows[-2:] == [("promote", "2.0.0", "1.0.0", "http"), ("rollback", "1.0.0", "2.0.0", "auto-rollback")]
    assert reason is not None
    assert "roc_auc" in reason
    assert details is not None
    assert details["champion_labelled"] >= MIN_LABELLED
    assert details["previous_labelled"] >= MIN_LABELLED
    assert details["previous_value"] - details["champion_value"] > MARGIN
    return RollbackRun(results=results, details=details, rolled_back_after_s=rolled_back_after_s)
