"""XGBoost trees compiled for ONNX Runtime: same probabilities as the booster (to 1e-6), used for small calls only,
and refused — the booster serving — whenever they would not reproduce it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xgboost

from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.formats import xgboost_native
from reportscore.scoring.formats.tree_compiler import CompiledTrees, compile_booster
from reportscore.scoring.formats.xgboost_native import XGBoostFormat
from reportscore.scoring.registry import formats_with, load_model_dir
from reportscore.scoring.synthetic import sample_reports

ATOL = 1e-6


def _booster_scores(booster: Any, matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(booster.inplace_predict(matrix, validate_features=False), dtype=np.float64)


def _trained(objective: str, *, booster: str = "gbtree", seed: int = 0) -> Any:
    """A small booster trained on data with missing values, so both default directions occur."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 4)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    y = ((np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) * 0.5 + rng.normal(scale=0.5, size=600)) > 0).astype(float)
    params = {"objective": objective, "max_depth": 4, "eta": 0.3, "nthread": 1, "booster": booster, "seed": seed}
    return xgboost.train(params, xgboost.DMatrix(x, label=y, missing=np.nan), num_boost_round=30)


def test_the_reference_model_is_served_by_compiled_trees_that_reproduce_the_booster() -> None:
    model = XGBoostFormat().load(REFERENCE_MODEL_DIR / "model.ubj", threads=1)
    assert isinstance(model.compiled, CompiledTrees)
    matrix = FeatureSchema.default().encode_reports(sample_reports(3000, seed=5))
    booster = _booster_scores(model.booster, matrix)
    served = model.predict(matrix)
    np.testing.assert_allclose(served, booster, rtol=0, atol=ATOL)
    assert not np.array_equal(served, booster), "the compiled trees answered (float32 summation order differs)"
    for rows in (1, 7, 100, 1000):  # whatever the call size, a row's score is the same
        parts = np.concatenate([model.predict(matrix[i : i + rows]) for i in range(0, len(matrix), rows)])
        np.testing.assert_array_equal(parts, served)


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:logistic"])
def test_missing_values_follow_each_split_default_direction(objective: str) -> None:
    booster = _trained(objective)
    compiled = compile_booster(booster, threads=1)
    assert isinstance(compiled, CompiledTrees), compiled
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 4)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    np.testing.assert_allclose(compiled.predict(x), _booster_scores(booster, x), rtol=0, atol=ATOL)
    assert compiled.max_difference <= ATOL


def test_a_compiled_model_that_does_not_reproduce_the_booster_is_refused() -> None:
    """The probe comparison is what decides: with no tolerance at all, float32 summation order already differs."""
    booster = _trained("binary:logistic")
    reason = compile_booster(booster, threads=1, tolerance=0.0)
    assert isinstance(reason, str)
    assert "differs from XGBoost" in reason


@pytest.mark.parametrize(
    ("objective", "kind", "expected"),
    [
        ("reg:squarederror", "gbtree", "objective 'reg:squarederror' is not compiled"),
        ("binary:logistic", "dart", "booster 'dart' is not compiled (only gbtree)"),
    ],
)
def test_unsupported_boosters_are_left_to_xgboost(objective: str, kind: str, expected: str) -> None:
    reason = compile_booster(_trained(objective, booster=kind), threads=1)
    assert reason == expected


def test_a_refused_compilation_leaves_the_booster_serving(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(xgboost_native, "compile_booster", lambda booster, threads: "not today")
    with caplog.at_level("INFO", logger=xgboost_native.__name__):
        model = XGBoostFormat().load(REFERENCE_MODEL_DIR / "model.ubj", threads=1)
    assert model.compiled is None
    assert any(getattr(r, "reason", None) == "not today" for r in caplog.records)
    matrix = FeatureSchema.default().encode_reports(sample_reports(5, seed=2))
    np.testing.assert_array_equal(model.predict(matrix), _booster_scores(model.booster, matrix))


def test_the_setting_turns_compilation_off() -> None:
    on = load_model_dir(REFERENCE_MODEL_DIR, threads=1, formats=formats_with([]))
    off = load_model_dir(REFERENCE_MODEL_DIR, threads=1, formats=formats_with([], compile_trees=False))
    assert getattr(on.model, "compiled", None) is not None
    assert getattr(off.model, "compiled", "missing") is None


def test_without_the_onnx_package_xgboost_serves_with_one_logged_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # as if the package were not installed
    booster = _trained("binary:logistic")
    reason = compile_booster(booster, threads=1)
    assert isinstance(reason, str)
    assert reason.startswith("the onnx package is not installed")
    with caplog.at_level("INFO", logger=xgboost_native.__name__):
        model = XGBoostFormat().load(REFERENCE_MODEL_DIR / "model.ubj", threads=1)
    assert model.compiled is None
    reasons = [r for r in caplog.records if getattr(r, "reason", "").startswith("the onnx package is not installed")]
    assert len(reasons) == 1
    matrix = FeatureSchema.default().encode_reports(sample_reports(50, seed=3))
    np.testing.assert_array_equal(model.predict(matrix), _booster_scores(model.booster, matrix))
