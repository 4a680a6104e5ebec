"""Fakes that implement the real interfaces (the model-format seam), for tests that need control over scoring."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

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
