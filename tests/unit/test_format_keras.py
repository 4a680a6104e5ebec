"""The Keras format: a tiny network trained here, saved as ``.keras``, loaded in safe mode and compared with Keras's
own float32 prediction; corrupt, unsafe and wrongly shaped models are refused. Needs the tensorflow extra."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from reportscore.cli import app
from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.formats.base import ModelLoadError
from reportscore.scoring.formats.catalog import builtin_formats, format_for_suffix
from reportscore.scoring.formats.keras_format import KerasFormat, KerasModel
from reportscore.scoring.registration import register_model
from reportscore.scoring.synthetic import generate_labels, generate_reports
from reportscore.scoring.training_keras import train_keras
from reportscore.storage import migrate
from reportscore.storage.db import Database
from tests.conftest import make_settings, require

pytestmark = [
    pytest.mark.tensorflow,
    # Keras's model.save (test side only) converts variables with np.array(x, copy=False) on TF tensors
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

Matrix = npt.NDArray[np.float32]
TRAIN_SEED = 21
EVAL_SEED = 22


@dataclass(frozen=True)
class SavedNet:
    path: Path
    expected: npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def keras() -> Any:
    require(
        importlib.util.find_spec("tensorflow") is not None,
        "the tensorflow extra is not installed (pip install 'reportscore[tensorflow]')",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


@pytest.fixture(scope="module")
def x_eval() -> Matrix:
    return FeatureSchema.default().encode(generate_reports(300, seed=EVAL_SEED))


def _train(keras: Any, layers: Callable[[], list[Any]], path: Path, x_eval: Matrix) -> SavedNet:
    columns = generate_reports(600, seed=TRAIN_SEED)
    x, y = FeatureSchema.default().encode(columns), generate_labels(columns, seed=TRAIN_SEED)
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input(shape=(x.shape[1],)), *layers()])
    net.compile(optimizer="adam", loss="binary_crossentropy")
    net.fit(x, y.astype(np.float32), epochs=2, batch_size=64, verbose=0)
    net.save(path)
    return SavedNet(path, np.asarray(net.predict(x_eval, verbose=0)))


@pytest.fixture(scope="module")
def saved_net(keras: Any, x_eval: Matrix, tmp_path_factory: pytest.TempPathFactory) -> SavedNet:
    def layers() -> list[Any]:
        return [keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]

    return _train(keras, layers, tmp_path_factory.mktemp("keras") / "net.keras", x_eval)


def test_keras_matches_keras_predict(saved_net: SavedNet, x_eval: Matrix) -> None:
    name = format_for_suffix(saved_net.path.name)
    assert name == "keras"
    model = builtin_formats()[name].load(saved_net.path, threads=1)
    assert isinstance(model, KerasModel)
    assert model.format == "keras"
    assert model.n_features == x_eval.shape[1]
    assert saved_net.expected.dtype == np.float32
    assert saved_net.expected.shape == (len(x_eval), 1)
    expected = saved_net.expected[:, 0]
    for rows in (1, 7, len(x_eval)):
        scores = model.predict(x_eval[:rows])
        assert scores.dtype == np.float64
        assert scores.shape == (rows,)
        np.testing.assert_allclose(scores, expected[:rows], rtol=0, atol=1e-6)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_keras_file_is_refused(damage: str, saved_net: SavedNet, tmp_path: Path) -> None:
    data = saved_net.path.read_bytes()
    path = tmp_path / "net.keras"
    path.write_bytes(b"\x00\x01 not a model \xff" * 8 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"net\.keras: not a loadable Keras model") as info:
        KerasFormat().load(path, threads=1)
    assert "\n" not in str(info.value)


def test_safe_mode_refuses_a_lambda_layer(keras: Any, x_eval: Matrix, tmp_path: Path) -> None:
    def layers() -> list[Any]:
        return [keras.layers.Dense(1, activation="sigmoid"), keras.layers.Lambda(lambda t: t * 1.0)]

    saved = _train(keras, layers, tmp_path / "lambda.keras", x_eval)
    with pytest.raises(ModelLoadError, match=r"lambda\.keras: not a loadable Keras model .*[Ll]ambda"):
        KerasFormat().load(saved.path, threads=1)


def test_a_two_unit_output_is_refused(keras: Any, tmp_path: Path) -> None:
    net = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(2, activation="softmax")])
    path = tmp_path / "softmax.keras"
    net.save(path)
    with pytest.raises(ModelLoadError, match=r"output shape \(None, 2\)"):
        KerasFormat().load(path, threads=1)


def test_train_reference_keras_writes_a_model_directory_the_registry_takes(tmp_path: Path) -> None:
    """``reportscore train-reference --kind keras``'s trainer: a normalising network in ``.keras`` that the
    registry validates and serves, whose holdout metrics are those of the artifact as the service loads it."""
    require(importlib.util.find_spec("tensorflow") is not None, "the tensorflow extra is needed")

    out = tmp_path / "keras-model"
    metrics = train_keras(out, version="3.1.0", n_reports=6000, epochs=2, seed=5, threads=1, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model.keras", "reference.json", "schema.json"]
    metadata = json.loads((out / "metadata.json").read_text())
    assert (metadata["version"], metadata["format"], metadata["artifact"]) == ("3.1.0", "keras", "model.keras")
    assert metadata["training"]["layers"][0] == "Normalization"
    assert metadata["data"]["n_holdout"] == 1200
    assert metrics == metadata["metrics"]
    assert 0.6 < metrics["holdout_roc_auc"] <= 1.0  # better than chance on the synthetic rule after two epochs

    # The holdout metrics are recomputed here from the saved file, loaded as the service loads it.
    schema = FeatureSchema.default()
    columns = generate_reports(6000, seed=5)
    holdout = schema.encode(columns)[4800:]
    labels = generate_labels(columns, seed=5)[4800:]
    scores = KerasFormat().load(out / "model.keras", threads=1).predict(holdout)
    assert roc_auc_score(labels, scores) == pytest.approx(metrics["holdout_roc_auc"], abs=1e-9)
    reference = json.loads((out / "reference.json").read_text())
    assert reference["n"] == 1200
    assert sum(reference["scores"]["counts"]) == 1200

    settings = make_settings(tmp_path)
    db = Database.from_settings(settings)
    try:
        migrate.upgrade_to_head(db)
        view = register_model(
            db=db, settings=settings, artifact=out / "model.keras", version="3.1.0", schema=out / "schema.json"
        )
    finally:
        db.dispose()
    assert (view.format, view.sha256, view.is_champion) == ("keras", metadata["sha256"], False)


def test_train_reference_keras_needs_an_output_directory() -> None:
    result = CliRunner().invoke(app, ["train-reference", "--kind", "keras"])
    assert result.exit_code == 2
    assert "--output-dir is required with --kind keras" in result.output
