"""The model registry: register (validated), promote and roll back without a restart, in-process and over HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.registration import RegistrationError, register_model
from reportscore.storage.models import ModelVersion
from tests.e2e.conftest import app_client, state_of
from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.fakes import write_fake_model_dir
from tests.model_helpers import schema_file, tiny_xgboost
from tests.servers import ServiceProcess, run_cli
from tests.switch_load import promote_and_roll_back_under_load


def _wait_version(client: TestClient, version: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while client.post("/score", params={"persist": "false"}, json=POC_EXAMPLE).json()["model"]["version"] != version:
        assert time.monotonic() < deadline, f"{version} never started serving"
        time.sleep(0.1)


def test_register_promote_and_roll_back_over_http(tmp_path: Path) -> None:
    clf = tiny_xgboost(tmp_path / "candidate.ubj")
    with app_client(tmp_path, model_refresh_s=0.2) as client:
        listed = client.get("/models").json()
        assert listed["champion"] == "1.0.0"  # the bundled reference model, registered at first start
        with (tmp_path / "candidate.ubj").open("rb") as fh:
            created = client.post("/models", data={"version": "2.0.0"}, files={"artifact": ("candidate.ubj", fh)})
        assert created.status_code == 201, created.text
        assert created.json()["is_champion"] is False
        assert created.json()["reference_source"] == "synthetic"
        detail = client.get("/models/2.0.0").json()
        assert detail["reference"]["fields"]["abuse_type"]["kind"] == "categorical"
        assert client.get("/models/9.9.9").status_code == 404

        assert client.post("/models/2.0.0/promote").json()["is_champion"] is True
        _wait_version(client, "2.0.0")
        scored = client.post("/score", json=POC_EXAMPLE).json()
        expected = clf.predict_proba(FeatureSchema.default().encode_reports(POC_EXAMPLE))[:, 1]
        np.testing.assert_allclose(scored["score"], expected, atol=1e-6)
        task = client.get(f"/task/{client.post('/predict', json=POC_EXAMPLE).json()['task_id']}?wait=10").json()
        assert task["model"]["version"] == "2.0.0"

        assert client.post("/models/rollback").json()["version"] == "1.0.0"
        _wait_version(client, "1.0.0")
        assert client.post("/models/rollback").json()["version"] == "2.0.0"  # a rollback can be rolled back
        with (tmp_path / "candidate.ubj").open("rb") as fh:
            again = client.post("/models", data={"version": "2.0.0"}, files={"artifact": ("candidate.ubj", fh)})
        assert again.status_code == 409


def _assert_rejected(client: TestClient, tmp_path: Path, match: str, **kwargs: Any) -> None:
    state = state_of(client)
    with state.db.read() as s:
        before = s.scalar(select(func.count()).select_from(ModelVersion))
    with pytest.raises(RegistrationError, match=match):
        register_model(db=state.db, settings=state.settings, version="bad-1", **kwargs)
    with state.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == before
    store_root = state.settings.data_dir / "models"
    assert not (store_root / state.settings.model_name / "bad-1").exists()
    assert list((store_root / ".staging").iterdir()) == []
    assert client.get("/models").json()["champion"] == "1.0.0"
    assert client.post("/score", json=POC_EXAMPLE).json()["model"]["version"] == "1.0.0"


def test_corrupt_artifact_is_rejected_and_the_champion_stays(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.ubj"
    corrupt.write_bytes(b"\x00not a model at all" * 10)
    with app_client(tmp_path) as client:
        _assert_rejected(client, tmp_path, "artifact rejected", artifact=corrupt)
        with corrupt.open("rb") as fh:
            resp = client.post("/models", data={"version": "bad-1"}, files={"artifact": ("corrupt.ubj", fh)})
        assert resp.status_code == 422
        assert "artifact rejected" in resp.json()["detail"]


def test_schema_mismatch_is_rejected(tmp_path: Path) -> None:
    tiny_xgboost(tmp_path / "m.json")
    names = ["a", "b", "c", "d", "e", "f"]
    bad_schema = schema_file(tmp_path / "schema.json", names=names)
    unknown_field = tmp_path / "unknown.json"
    doc = FeatureSchema.default().to_dict()
    doc["features"][2]["source"] = "account_age_days"
    unknown_field.write_text(json.dumps(doc))
    with app_client(tmp_path) as client:
        _assert_rejected(client, tmp_path, "differ from schema", artifact=tmp_path / "m.json", schema=bad_schema)
        _assert_rejected(client, tmp_path, "unknown report field", artifact=tmp_path / "m.json", schema=unknown_field)


def test_model_that_outputs_nan_is_rejected(tmp_path: Path) -> None:
    model_dir = write_fake_model_dir(tmp_path / "nan-model", nan=True)
    with app_client(tmp_path, extra_model_formats=["tests.fakes:FakeFormat"]) as client:
        _assert_rejected(client, tmp_path, "0..1", artifact=model_dir / "fake.json", format_name="fake")


def test_cli_register_list_promote_rollback(tmp_path: Path) -> None:
    tiny_xgboost(tmp_path / "m.json")
    env = {"REPORTSCORE_DATA_DIR": str(tmp_path / "data")}
    registered = run_cli(["models", "register", str(tmp_path / "m.json"), "--version", "1.1.0"], env)
    assert registered.returncode == 0, registered.stderr
    assert "not serving yet" in registered.stderr
    listed = run_cli(["models", "list"], env).stdout
    assert "1.0.0" in listed
    assert "1.1.0" in listed
    assert run_cli(["models", "promote", "1.1.0"], env).returncode == 0
    shown = json.loads(run_cli(["models", "show", "1.1.0"], env).stdout)
    assert shown["is_champion"] is True
    assert run_cli(["models", "rollback"], env).returncode == 0
    assert json.loads(run_cli(["models", "show", "1.0.0"], env).stdout)["is_champion"] is True
    missing = run_cli(["models", "promote", "7.7.7"], env)
    assert missing.returncode == 2
    assert "not registered" in missing.stderr


@pytest.mark.e2e
@pytest.mark.slow
def test_promote_and_rollback_under_load_without_a_failed_request(tmp_path: Path) -> None:
    tiny_xgboost(tmp_path / "next.ubj")
    refresh_s = 0.5
    env = {"REPORTSCORE_MODEL_REFRESH_S": str(refresh_s)}
    with ServiceProcess(tmp_path / "data", env=env) as service, httpx.Client(base_url=service.url, timeout=30) as http:
        with (tmp_path / "next.ubj").open("rb") as fh:
            assert http.post("/models", data={"version": "2.0.0"}, files={"artifact": ("n.ubj", fh)}).status_code == 201
        run = promote_and_roll_back_under_load(service.url, body=lambda: POC_EXAMPLE, phase_s=3.0)
    delay = run.check(refresh_s=refresh_s)
    switch = service.logs().count('"msg":"champion switched"')
    assert switch == 2
    print(
        f"\n[registry] embedded: {len(run.results)} jobs, 0 failed; first job on 2.0.0 submitted "
        f"{delay:.2f}s after the promote (refresh {refresh_s}s)"
    )


def test_a_promoted_version_that_fails_to_load_leaves_the_old_one_serving(tmp_path: Path) -> None:
    tiny_xgboost(tmp_path / "m.ubj")
    with app_client(tmp_path, model_refresh_s=0.2) as client:
        state = state_of(client)
        view = register_model(db=state.db, settings=state.settings, artifact=tmp_path / "m.ubj", version="2.0.0")
        stored = Path(view.artifact_uri.removeprefix("file://"))
        stored.write_bytes(stored.read_bytes()[:-10] + b"tampered!!")  # the shared volume got corrupted
        assert client.post("/models/2.0.0/promote").status_code == 200
        time.sleep(1.0)
        for _ in range(5):
            assert client.post("/score", json=POC_EXAMPLE).json()["model"]["version"] == "1.0.0"
        assert state.registry.current.version == "1.0.0"
