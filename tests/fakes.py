"""Fakes that implement the real interfaces (the model-format seam), for tests that need control over scoring."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.formats.base import FloatMatrix, Scores
from reportscore.scoring.registry import ServingModel

POISON_TEXT_LEN = 666_666


class FakeModel:
    """Score = popularity / 5. A row with report_text_len == POISON_TEXT_LEN makes predict raise.

    ``gate``: when given, every predict call waits for it to be set (to hold jobs in flight).
    """

    format = "fake"
    feature_names: list[str] | None = None

    def __init__(self, *, gate: threading.Event | None = None, nan: bool = False) -> None:
        self.gate = gate
        self.nan = nan
        self.calls: list[int] = []
        self._names = FeatureSchema.default().names

    def predict(self, matrix: FloatMatrix) -> Scores:
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.calls.append(matrix.shape[0])
        text_len = matrix[:, self._names.index("report_text_len")]
        if np.any(text_len == POISON_TEXT_LEN):
            raise ValueError("poison report")
        scores = matrix[:, self._names.index("popularity")].astype(np.float64) / 5.0
        if self.nan:
            scores[:] = np.nan
        return scores


def fake_serving_model(model: FakeModel | None = None, *, version: str = "fake-1") -> ServingModel:
    return ServingModel(
        name="fake",
        version=version,
        format="fake",
        sha256="0" * 64,
        schema=FeatureSchema.default(),
        model=model or FakeModel(),
        loaded_at=datetime.now(UTC),
        warmup_ms=0.0,
    )


CRASH_TEXT_LEN = 777_777


class FakeFileModel:
    """The fake model as a loadable artifact (for worker processes): popularity / 5, a poison input that raises,
    and one that kills the process scoring it (as a segfaulting model would). ``raise_on_rating``: every batch
    holding a report with that profile rating raises (a model that loads and warms up, then fails on traffic)."""

    format = "fake"
    feature_names: list[str] | None = None

    def __init__(self, config: dict[str, Any]) -> None:
        self._names = FeatureSchema.default().names
        self._sleep_s = float(config.get("sleep_s", 0.0))
        self._nan = bool(config.get("nan", False))
        self._raise_on_rating = config.get("raise_on_rating")

    def predict(self, matrix: FloatMatrix) -> Scores:
        text_len = matrix[:, self._names.index("report_text_len")]
        if np.any(text_len == CRASH_TEXT_LEN):
            os._exit(13)
        if np.any(text_len == POISON_TEXT_LEN):
            raise ValueError("poison report")
        rating = matrix[:, self._names.index("profile_rating")]
        if self._raise_on_rating is not None and np.any(rating == float(self._raise_on_rating)):
            raise RuntimeError("this model raises on every batch holding a report with this rating")
        if self._sleep_s:
            time.sleep(self._sleep_s)
        scores = matrix[:, self._names.index("popularity")].astype(np.float64) / 5.0
        if self._nan:
            scores[:] = np.nan
        return scores


class FakeFormat:
    """``REPORTSCORE_EXTRA_MODEL_FORMATS='["tests.fakes:FakeFormat"]'`` makes worker processes able to load it."""

    name = "fake"
    suffixes = (".json",)

    def load(self, path: Path, *, threads: int) -> FakeFileModel:
        return FakeFileModel(json.loads(path.read_text()))


def write_fake_model_dir(model_dir: Path, **config: Any) -> Path:
    """A model directory (artifact, schema.json, metadata.json with its sha256) for the fake format."""
    model_dir.mkdir(parents=True, exist_ok=True)
    artifact = model_dir / "fake.json"
    artifact.write_text(json.dumps(config))
    FeatureSchema.default().save(model_dir / "schema.json")
    metadata = {
        "name": "fake",
        "version": str(config.get("version", "fake-1")),
        "format": "fake",
        "artifact": artifact.name,
        "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
    }
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    return model_dir
