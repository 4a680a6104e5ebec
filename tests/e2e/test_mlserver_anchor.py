"""The benchmark's MLServer anchor serves the reference model: its venv builds (once; cached afterwards), MLServer
starts and answers V2 inference requests, and its scores are XGBoost's own ``predict_proba``.

The first run downloads MLServer and its dependencies (about 1 GB); later runs reuse the cached venv."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
import xgboost as xgb
from benchmarks import mlserver_anchor
from benchmarks.http_clients import RawClient
from benchmarks.loadgen import run_job, v2_scores
from benchmarks.services import HttpServer

from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring.registry import load_model_dir
from reportscore.scoring.synthetic import sample_reports
from tests.mlserver import mlserver

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    with mlserver(tmp_path_factory.mktemp("mlserver")) as server:
        yield server


def _reports_and_truth(n: int) -> tuple[list[dict[str, object]], np.ndarray, np.ndarray]:
    """Reports, their encoding by the service's schema, and XGBoost's own positive-class probabilities."""
    reports = sample_reports(n, seed=11)
    schema = load_model_dir(REFERENCE_MODEL_DIR, threads=1).schema
    matrix = schema.encode_reports(reports)
    classifier = xgb.XGBClassifier()
    classifier.load_model(REFERENCE_MODEL_DIR / "model.ubj")
    return reports, matrix, classifier.predict_proba(matrix)[:, 1]


def test_the_venv_is_cached_under_a_name_of_its_pins(anchor: HttpServer) -> None:
    venv = mlserver_anchor.venv_dir()
    assert venv.name == f"mlserver-venv-{mlserver_anchor.pins_hash()}"
    assert (venv / ".complete").exists()
    assert mlserver_anchor.installed_version(venv) == "1.7.1"
    assert mlserver_anchor.ensure_venv() == venv  # cached: no rebuild


def test_anchor_scores_are_xgboosts_predict_proba(anchor: HttpServer) -> None:
    _, matrix, truth = _reports_and_truth(25)
    answer = httpx.post(anchor.url + mlserver_anchor.INFER_PATH, content=mlserver_anchor.infer_body(matrix))
    assert answer.status_code == 200, answer.text
    scores = v2_scores(answer.json())
    assert scores is not None
    assert len(scores) == 25
    assert max(abs(s - t) for s, t in zip(scores, truth, strict=True)) <= 1e-6


def test_the_load_generator_checks_the_anchors_answers(anchor: HttpServer) -> None:
    reports, _, truth = _reports_and_truth(10)
    [good] = mlserver_anchor.v2_bodies(reports, 10, [float(t) for t in truth])
    [wrong] = mlserver_anchor.v2_bodies(reports, 10, [float(t) + 0.01 for t in truth])

    async def jobs() -> list[str | None]:
        client = RawClient(anchor.url, 2)
        try:
            return [await run_job(client, "v2", body, mlserver_anchor.INFER_PATH, True) for body in (good, wrong)]
        finally:
            await client.aclose()

    assert asyncio.run(jobs()) == [None, "score mismatch"]
    agreement = mlserver_anchor.agreement(anchor.url, reports, [float(t) for t in truth])
    assert agreement == {"reports": 10, "max_abs_diff": pytest.approx(0.0, abs=1e-6)}


def test_an_unbuildable_venv_is_reported_not_half_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlserver_anchor, "PINS", ("reportscore-no-such-package==0.0.0",))
    monkeypatch.setenv("UV_OFFLINE", "1")
    with pytest.raises(mlserver_anchor.AnchorUnavailableError):
        mlserver_anchor.ensure_venv(tmp_path)
    assert not mlserver_anchor.venv_dir(tmp_path).exists()
