"""The committed reference model: artifacts, loading, quality, reproducibility and batch-independent encoding."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring import training
from reportscore.scoring.features import REPORT_FIELDS, FeatureSchema
from reportscore.scoring.formats.xgboost_native import XGBoostFormat, XGBoostModel
from reportscore.scoring.synthetic import generate_labels, generate_reports, sample_reports

ARTIFACTS = ("model.ubj", "schema.json", "reference.json", "metadata.json", "MODEL_CARD.md")
AUC_RANGE = (0.75, 0.95)
FRESH_SEED = 987_654  # not the training seed: a holdout the model has never seen
FIXED_SAMPLE_SEED = 31


@pytest.fixture(scope="module")
def metadata() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE_MODEL_DIR / "metadata.json").read_text())
    return data


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE_MODEL_DIR / "reference.json").read_text())
    return data


@pytest.fixture(scope="module")
def model() -> XGBoostModel:
    return XGBoostFormat().load(REFERENCE_MODEL_DIR / "model.ubj", threads=1)


def _score(model: XGBoostModel, reports: list[dict[str, Any]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return model.predict(FeatureSchema.default().encode_reports(reports))


def test_reference_model_dir_is_the_package_directory() -> None:
    package_dir = Path(training.__file__).parent.parent
    assert package_dir / "reference_model" == REFERENCE_MODEL_DIR
    assert (REFERENCE_MODEL_DIR / "__init__.py").is_file()


@pytest.mark.parametrize("name", ARTIFACTS)
def test_committed_artifact_exists(name: str) -> None:
    path = REFERENCE_MODEL_DIR / name
    assert path.is_file()
    assert path.stat().st_size > 0


def test_metadata_describes_the_artifact(metadata: dict[str, Any]) -> None:
    assert metadata["name"] == "reportscore-reference"
    assert metadata["version"] == "1.0.0"
    assert metadata["format"] == "xgboost"
    assert metadata["artifact"] == "model.ubj"
    digest = hashlib.sha256((REFERENCE_MODEL_DIR / metadata["artifact"]).read_bytes()).hexdigest()
    assert metadata["sha256"] == digest
    created = datetime.fromisoformat(metadata["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert metadata["reproduce"] == "reportscore train-reference"
    assert metadata["xgboost_version"]
    assert metadata["feature_names"] == FeatureSchema.default().names


def test_committed_schema_is_the_default_schema() -> None:
    assert FeatureSchema.load(REFERENCE_MODEL_DIR / "schema.json") == FeatureSchema.default()


def test_model_loads_with_the_schema_feature_names(model: XGBoostModel) -> None:
    assert model.format == "xgboost"
    assert model.feature_names == FeatureSchema.default().names


def test_recorded_holdout_metrics_are_in_range(metadata: dict[str, Any]) -> None:
    metrics = metadata["metrics"]
    assert AUC_RANGE[0] <= metrics["holdout_roc_auc"] <= AUC_RANGE[1]
    assert 0.10 <= metrics["holdout_positive_rate"] <= 0.30
    assert 0.0 < metrics["holdout_log_loss"] < 0.69  # better than a constant 0.5


def test_auc_on_a_fresh_holdout_is_in_range(model: XGBoostModel, metadata: dict[str, Any]) -> None:
    columns = generate_reports(20_000, seed=FRESH_SEED)
    labels = generate_labels(columns, seed=FRESH_SEED)
    scores = model.predict(FeatureSchema.default().encode(columns))
    assert ((scores >= 0.0) & (scores <= 1.0)).all()
    auc = float(roc_auc_score(labels, scores))
    assert AUC_RANGE[0] <= auc <= AUC_RANGE[1]
    assert auc == pytest.approx(metadata["metrics"]["holdout_roc_auc"], abs=0.02)


def test_reference_distributions_match_the_documented_layout(
    metadata: dict[str, Any], reference: dict[str, Any], model: XGBoostModel
) -> None:
    """Regenerate the training holdout and recompute every count with the documented binning rule."""
    data = metadata["data"]
    columns = generate_reports(data["n_reports"], seed=data["seed"])
    holdout = {name: values[data["n_train"] :] for name, values in columns.items()}
    n = data["n_holdout"]
    assert reference["n"] == n
    assert set(reference["fields"]) == set(REPORT_FIELDS)

    abuse = reference["fields"]["abuse_type"]
    assert abuse["kind"] == "categorical"
    assert abuse["counts"] == {t: int((holdout["abuse_type"] == t).sum()) for t in ("MSG", "PRF")}
    assert sum(abuse["frequencies"].values()) == pytest.approx(1.0)

    for name in REPORT_FIELDS[1:]:
        ref = reference["fields"][name]
        assert ref["kind"] == "numeric"
        cuts = np.asarray(ref["cut_points"])
        assert (np.diff(cuts) > 0).all(), name
        values = holdout[name].astype(np.float64)
        expected = np.bincount(np.searchsorted(cuts, values, side="right"), minlength=len(cuts) + 1)
        assert ref["counts"] == expected.tolist(), name
        assert min(ref["counts"]) > 0, name  # no bin is empty by construction

    scores = model.predict(FeatureSchema.default().encode(holdout))
    edges = reference["scores"]["bin_edges"]
    assert len(edges) == 21
    assert edges[0] == 0.0
    assert edges[-1] == 1.0
    counts, _ = np.histogram(scores, bins=np.asarray(edges))
    assert reference["scores"]["counts"] == counts.tolist()


def test_only_msg_batch_scores_like_the_same_reports_in_a_mixed_batch(model: XGBoostModel) -> None:
    schema = FeatureSchema.default()
    mixed = sample_reports(1000, seed=FIXED_SAMPLE_SEED)
    msg_only = [r for r in mixed if r["abuse_type"] == "MSG"]
    assert 0 < len(msg_only) < len(mixed)

    matrix = schema.encode_reports(msg_only)
    assert matrix.shape == (len(msg_only), len(schema.names))
    prf_column = schema.names.index("abuse_type_PRF")
    msg_column = schema.names.index("abuse_type_MSG")
    assert (matrix[:, prf_column] == 0.0).all()
    assert (matrix[:, msg_column] == 1.0).all()

    alone = model.predict(matrix)
    mixed_scores = _score(model, mixed)
    in_mixed = mixed_scores[[i for i, r in enumerate(mixed) if r["abuse_type"] == "MSG"]]
    np.testing.assert_array_equal(alone, in_mixed)
    assert np.unique(alone).size > 100  # the comparison is between real, varied scores
    one_by_one = np.concatenate([_score(model, [r]) for r in msg_only[:20]])
    np.testing.assert_array_equal(one_by_one, alone[:20])


@pytest.mark.slow
def test_retraining_with_defaults_reproduces_the_committed_model(
    tmp_path: Path, metadata: dict[str, Any], model: XGBoostModel
) -> None:
    metrics = training.train_reference(tmp_path, progress=False)

    assert set(metrics) == set(metadata["metrics"])
    for key, value in metadata["metrics"].items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    retrained = XGBoostFormat().load(tmp_path / "model.ubj", threads=1)
    assert retrained.feature_names == FeatureSchema.default().names
    sample = sample_reports(1000, seed=FIXED_SAMPLE_SEED)
    np.testing.assert_allclose(_score(retrained, sample), _score(model, sample), rtol=0, atol=1e-6)
    for name in ARTIFACTS:
        assert (tmp_path / name).is_file(), name
    new_reference = json.loads((tmp_path / "reference.json").read_text())
    committed = json.loads((REFERENCE_MODEL_DIR / "reference.json").read_text())
    assert new_reference["fields"] == committed["fields"]  # numpy only: exactly equal
    assert new_reference["scores"]["mean"] == pytest.approx(committed["scores"]["mean"], abs=1e-6)
