"""Every model format end to end: train a tiny model in the test, register it over HTTP, promote it, score through
the API, and compare with the framework's own prediction to 1e-6."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from reportscore.scoring.features import FeatureSchema
from tests.conftest import require
from tests.e2e.conftest import app_client
from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.model_helpers import save_keras, save_onnx, save_pickle, save_skops, tiny_xgboost

REPORTS = [*POC_EXAMPLE, dict(POC_EXAMPLE[0], popularity=5, report_text_len=900), dict(POC_EXAMPLE[1], popularity=0)]
X = FeatureSchema.default().encode_reports(REPORTS)


def _xgboost(path: Path) -> Callable[[], Any]:
    clf = tiny_xgboost(path)
    return lambda: clf.predict_proba(X)[:, 1]


def _skops(path: Path) -> Callable[[], Any]:
    pipe = save_skops(path)
    return lambda: pipe.predict_proba(X)[:, 1]


def _onnx(path: Path) -> Callable[[], Any]:
    session = save_onnx(path)
    return lambda: session.run(["probabilities"], {session.get_inputs()[0].name: X})[0][:, 1]


def _pickle(path: Path) -> Callable[[], Any]:
    pipe = save_pickle(path)
    return lambda: pipe.predict_proba(X)[:, 1]


def _keras(path: Path) -> Callable[[], Any]:
    model = save_keras(path)
    return lambda: model(X, training=False).numpy().reshape(-1)


def _register_promote_score(client: TestClient, artifact: Path, version: str) -> list[float]:
    with artifact.open("rb") as fh:
        created = client.post("/models", data={"version": version}, files={"artifact": (artifact.name, fh)})
    assert created.status_code == 201, created.text
    assert client.post(f"/models/{version}/promote").status_code == 200
    deadline = time.monotonic() + 15
    while True:
        body = client.post("/score", json=REPORTS).json()
        if body["model"]["version"] == version:
            scores: list[float] = body["score"]
            return scores
        assert time.monotonic() < deadline, f"{version} never served"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("suffix", "build"),
    [(".json", _xgboost), (".ubj", _xgboost), (".skops", _skops), (".onnx", _onnx)],
    ids=["xgboost-json", "xgboost-ubj", "skops", "onnx"],
)
def test_format_end_to_end(tmp_path: Path, suffix: str, build: Callable[[Path], Callable[[], Any]]) -> None:
    artifact = tmp_path / f"model{suffix}"
    expected = build(artifact)
    with app_client(tmp_path, model_refresh_s=0.2) as client:
        scores = _register_promote_score(client, artifact, "2.0.0")
    np.testing.assert_allclose(scores, expected(), atol=1e-6)


def test_pickle_needs_the_trust_flag(tmp_path: Path) -> None:
    artifact = tmp_path / "model.joblib"
    expected = _pickle(artifact)
    with app_client(tmp_path) as client, artifact.open("rb") as fh:
        refused = client.post("/models", data={"version": "2.0.0"}, files={"artifact": (artifact.name, fh)})
    assert refused.status_code == 422
    assert "REPORTSCORE_TRUST_PICKLE" in refused.json()["detail"]
    with app_client(tmp_path / "trusted", model_refresh_s=0.2, trust_pickle=True) as client:
        scores = _register_promote_score(client, artifact, "2.0.0")
    np.testing.assert_allclose(scores, expected(), atol=1e-6)


@pytest.mark.tensorflow
# TensorFlow's own tensors still implement numpy's old __array__ protocol while Keras trains (not our code).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_end_to_end(tmp_path: Path) -> None:
    require(importlib.util.find_spec("tensorflow") is not None, "the tensorflow extra is not installed")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    artifact = tmp_path / "model.keras"
    expected = _keras(artifact)
    with app_client(tmp_path, model_refresh_s=0.2) as client:
        scores = _register_promote_score(client, artifact, "2.0.0")
    np.testing.assert_allclose(scores, expected(), atol=1e-6)
