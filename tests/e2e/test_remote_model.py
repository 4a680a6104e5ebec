"""A remote model in the embedded service, against a real MLServer serving the reference model over V2: registered
with ``reportscore models register --remote``, promoted, scored; MLServer killed mid-load (jobs are retried and
finish once it is back, each report scored once, or fail with the outage as reason once their attempts are used
up); rolled back to the local model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from benchmarks import mlserver_anchor
from benchmarks.services import HttpServer
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.synthetic import sample_reports
from reportscore.storage.models import Job, Report, ReportScore
from tests.e2e.conftest import app_client, state_of
from tests.mlserver import kill, mlserver, restart
from tests.servers import run_cli

pytestmark = pytest.mark.slow

REMOTE = {
    "model_refresh_s": 0.2,
    "remote_retries": 1,
    "remote_backoff_base_s": 0.05,
    "remote_breaker_failures": 3,
    "remote_breaker_reset_s": 0.5,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    with mlserver(tmp_path_factory.mktemp("mlserver")) as running:
        yield running


def _truth(reports: list[dict[str, Any]]) -> np.ndarray:
    classifier = xgb.XGBClassifier()
    classifier.load_model(REFERENCE_MODEL_DIR / "model.ubj")
    return classifier.predict_proba(FeatureSchema.default().encode_reports(reports))[:, 1]


def _register_remote(tmp_path: Path, server: HttpServer, version: str) -> None:
    done = run_cli(
        [
            "models",
            "register",
            "--remote",
            f"{server.url}/v2/models/{mlserver_anchor.MODEL_NAME}",
            "--output",
            mlserver_anchor.OUTPUT,
            "--version",
            version,
        ],
        {"REPORTSCORE_DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 0, done.stderr
    assert f"({'remote_v2'}" in done.stderr


def _serving(client: TestClient, version: str, timeout_s: float = 10) -> None:
    """Wait until ``/score`` answers with ``version`` (while the old champion's endpoint is down it answers 503)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.post("/score", params={"persist": "false"}, json=sample_reports(1, seed=1))
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 200 and answer.json()["model"]["version"] == version:
            return
        assert time.monotonic() < deadline, f"{version} never started serving"
        time.sleep(0.05)


def _submit(client: TestClient, n_jobs: int, seed: int) -> list[str]:
    ids = []
    for i in range(n_jobs):
        answer = client.post("/predict", json=sample_reports(3, seed=seed + i))
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["task_id"])
    return ids


def _result(client: TestClient, task_id: str) -> dict[str, Any]:
    answer = client.get(f"/task/{task_id}", params={"wait": 30})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _attempts(client: TestClient, ids: list[str]) -> list[int]:
    with state_of(client).db.read() as s:
        return list(s.scalars(select(Job.attempts).where(Job.id.in_(ids))))


def test_a_remote_champion_scores_survives_an_outage_then_fails_clearly_and_rolls_back(
    tmp_path: Path, server: HttpServer
) -> None:
    _register_remote(tmp_path, server, "remote-1")
    with app_client(tmp_path, max_attempts=60, **REMOTE) as client:
        assert client.post("/models/remote-1/promote").json()["is_champion"] is True
        _serving(client, "remote-1")
        reports = sample_reports(20, seed=5)
        scored = client.post("/score", json=reports).json()
        np.testing.assert_allclose(scored["score"], _truth(reports), atol=1e-6)

        before = _submit(client, 5, seed=100)
        kill(server)  # mid-load: these jobs may be scored or caught by the outage
        during = _submit(client, 10, seed=200)
        deadline = time.monotonic() + 30
        while max(_attempts(client, during)) < 2:  # the outage made them go round again
            assert time.monotonic() < deadline, "no job was retried during the outage"
            time.sleep(0.05)
        restart(server)
        after = _submit(client, 5, seed=300)

        ids = before + during + after
        for task_id in ids:
            body = _result(client, task_id)
            assert body["status"] == "SUCCESS", body
            assert body["model"]["version"] == "remote-1"
        assert max(_attempts(client, during)) >= 2
        with state_of(client).db.read() as s:
            n_reports = s.scalar(select(func.count()).select_from(Report).where(Report.job_id.in_(ids)))
            n_scores = s.scalar(
                select(func.count()).select_from(ReportScore).join(Report).where(Report.job_id.in_(ids))
            )
        assert n_reports == n_scores == 3 * len(ids)  # nothing lost, nothing scored twice

    # The same store, restarted with fewer attempts: an outage that outlasts them fails the job with its reason.
    with app_client(tmp_path, max_attempts=2, **REMOTE) as client:
        _serving(client, "remote-1")  # the champion, loaded from the registry at start
        kill(server)
        outage = client.post("/score", json=sample_reports(2, seed=6))
        assert outage.status_code == 503
        assert outage.headers["retry-after"] == "1"
        assert outage.json() == {"detail": "the model is unavailable; retry shortly"}
        [task_id] = _submit(client, 1, seed=500)
        body = _result(client, task_id)
        assert body["status"] == "FAILURE"
        assert body["error"].startswith("scoring failed: the model was unavailable at each of 2 attempts: ")
        assert f"remote model {mlserver_anchor.MODEL_NAME} at {server.url}" in body["error"]
        assert _attempts(client, [task_id]) == [2]

        assert client.post("/models/rollback").json()["version"] == "1.0.0"
        _serving(client, "1.0.0")  # the local model needs no endpoint
        task = _result(client, _submit(client, 1, seed=400)[0])
        assert task["status"] == "SUCCESS"
        assert task["model"]["version"] == "1.0.0"
