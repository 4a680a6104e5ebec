"""Model formats: a tiny model of each kind trained here, saved, loaded through its format, and compared with the
framework's own prediction; corrupt, untrusted and unfit artifacts are refused with ``ModelLoadError``.

Keras has its own module (``test_format_keras.py``, needs the tensorflow extra); the checks that TensorFlow stays
unimported and that a missing extra gives an install hint are here, because they must hold without it.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import onnxruntime
import pytest
import skops.io
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from xgboost import XGBClassifier

from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.formats.base import LoadedModel, ModelLoadError
from reportscore.scoring.formats.catalog import builtin_formats, format_for_suffix
from reportscore.scoring.formats.keras_format import KerasFormat
from reportscore.scoring.formats.onnx_format import OnnxFormat, OnnxModel
from reportscore.scoring.formats.pickle_format import PickleFormat
from reportscore.scoring.formats.skops_format import TRUSTED_TYPES, SklearnModel, SkopsFormat
from reportscore.scoring.synthetic import generate_labels, generate_reports

Matrix = npt.NDArray[np.float32]
TRAIN_SEED = 11
EVAL_SEED = 12
ATOL = 1e-6


@dataclass(frozen=True)
class Artifact:
    """A saved model and the scores its own framework gives for the evaluation matrix."""

    path: Path
    expected: npt.NDArray[Any]


def _matrix(n: int, seed: int) -> Matrix:
    return FeatureSchema.default().encode(generate_reports(n, seed=seed))


@pytest.fixture(scope="module")
def train() -> tuple[Matrix, npt.NDArray[np.int8]]:
    columns = generate_reports(600, seed=TRAIN_SEED)
    return FeatureSchema.default().encode(columns), generate_labels(columns, seed=TRAIN_SEED)


@pytest.fixture(scope="module")
def x_eval() -> Matrix:
    return _matrix(300, EVAL_SEED)


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


def _pipeline(train: tuple[Matrix, npt.NDArray[np.int8]]) -> Pipeline:
    x, y = train
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(x, y)


@pytest.fixture(scope="module")
def xgboost_json(train: tuple[Matrix, npt.NDArray[np.int8]], x_eval: Matrix, artifact_dir: Path) -> Artifact:
    return _xgboost_artifact(train, x_eval, artifact_dir / "model.json")


@pytest.fixture(scope="module")
def xgboost_ubj(train: tuple[Matrix, npt.NDArray[np.int8]], x_eval: Matrix, artifact_dir: Path) -> Artifact:
    return _xgboost_artifact(train, x_eval, artifact_dir / "model.ubj")


def _xgboost_artifact(train: tuple[Matrix, npt.NDArray[np.int8]], x_eval: Matrix, path: Path) -> Artifact:
    clf = XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, random_state=0).fit(*train)
    clf.save_model(path)
    return Artifact(path, clf.predict_proba(x_eval)[:, 1])


@pytest.fixture(scope="module")
def skops_pipeline(train: tuple[Matrix, npt.NDArray[np.int8]], x_eval: Matrix, artifact_dir: Path) -> Artifact:
    pipeline = _pipeline(train)
    path = artifact_dir / "model.skops"
    skops.io.dump(pipeline, path)
    return Artifact(path, pipeline.predict_proba(x_eval)[:, 1])


@pytest.fixture(scope="module")
def onnx_pipeline(train: tuple[Matrix, npt.NDArray[np.int8]], x_eval: Matrix, artifact_dir: Path) -> Artifact:
    pipeline = _pipeline(train)
    path = artifact_dir / "model.onnx"
    onx = convert_sklearn(
        pipeline,
        initial_types=[("input", FloatTensorType([None, x_eval.shape[1]]))],
        options={id(pipeline): {"zipmap": False}},
    )
    path.write_bytes(onx.SerializeToString())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    own = session.run(["probabilities"], {"input": x_eval})[0][:, 1]
    assert own.dtype == np.float32
    # float32 arithmetic in the graph stays within float32 rounding of scikit-learn's float64 answer
    np.testing.assert_allclose(own, pipeline.predict_proba(x_eval)[:, 1], rtol=0, atol=1e-5)
    return Artifact(path, own)


@pytest.fixture(scope="module")
def forest_pkl(train: tuple[Matrix, npt.NDArray[np.int8]], x_eval: Matrix, artifact_dir: Path) -> Artifact:
    return _forest_artifact(train, x_eval, artifact_dir / "forest.pkl")


@pytest.fixture(scope="module")
def forest_joblib(train: tuple[Matrix, npt.NDArray[np.int8]], x_eval: Matrix, artifact_dir: Path) -> Artifact:
    return _forest_artifact(train, x_eval, artifact_dir / "forest.joblib")


def _forest_artifact(train: tuple[Matrix, npt.NDArray[np.int8]], x_eval: Matrix, path: Path) -> Artifact:
    """A random forest saved with plain ``pickle`` (``.pkl``) or ``joblib.dump`` (``.joblib``)."""
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, n_jobs=2, random_state=0).fit(*train)
    if path.suffix == ".pkl":
        path.write_bytes(pickle.dumps(forest))
    else:
        joblib.dump(forest, path)
    return Artifact(path, forest.predict_proba(x_eval)[:, 1])


def _load(path: Path, *, trust_pickle: bool = False) -> LoadedModel:
    """Load through the catalog, the way the service picks a format from the artifact's suffix."""
    name = format_for_suffix(path.name)
    assert name is not None
    return builtin_formats(trust_pickle=trust_pickle)[name].load(path, threads=1)


def _assert_scores(model: LoadedModel, x_eval: Matrix, expected: npt.NDArray[Any]) -> None:
    scores = model.predict(x_eval)
    assert scores.dtype == np.float64
    assert scores.shape == (len(x_eval),)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=ATOL)
    one = model.predict(x_eval[:1])
    assert one.shape == (1,)
    np.testing.assert_allclose(one, expected[:1], rtol=0, atol=ATOL)


# --- round trips -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["xgboost_json", "xgboost_ubj"])
def test_xgboost_matches_xgbclassifier(fixture: str, request: pytest.FixtureRequest, x_eval: Matrix) -> None:
    artifact: Artifact = request.getfixturevalue(fixture)
    model = _load(artifact.path)
    assert model.format == "xgboost"
    _assert_scores(model, x_eval, artifact.expected)


def test_skops_pipeline_matches_predict_proba(skops_pipeline: Artifact, x_eval: Matrix) -> None:
    model = _load(skops_pipeline.path)
    assert isinstance(model, SklearnModel)
    assert model.format == "skops"
    assert model.n_features == x_eval.shape[1]
    _assert_scores(model, x_eval, skops_pipeline.expected)


def test_onnx_matches_onnxruntime(onnx_pipeline: Artifact, x_eval: Matrix) -> None:
    model = _load(onnx_pipeline.path)
    assert isinstance(model, OnnxModel)
    assert model.format == "onnx"
    assert model.n_features == x_eval.shape[1]
    _assert_scores(model, x_eval, onnx_pipeline.expected)


@pytest.mark.parametrize("output_shape", [["N", 1], ["N"]], ids=["N-by-1", "N"])
def test_onnx_single_sigmoid_output(output_shape: list[Any], x_eval: Matrix, tmp_path: Path) -> None:
    """A hand-built graph ``sigmoid(x @ w)`` with one [N, 1] or [N] output (as from a converted network)."""
    weights = np.linspace(-1e-3, 1e-3, x_eval.shape[1], dtype=np.float32).reshape(-1, 1)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p"] if output_shape == ["N", 1] else ["p2"]),
    ]
    if output_shape == ["N"]:
        nodes.append(helper.make_node("Squeeze", ["p2", "axes"], ["p"]))
    graph = helper.make_graph(
        nodes,
        "sigmoid",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", x_eval.shape[1]])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, output_shape)],
        initializer=[
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
        ],
    )
    path = tmp_path / "sigmoid.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    own = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x_eval})[0]
    assert own.shape == (len(x_eval), *([1] if output_shape == ["N", 1] else []))
    _assert_scores(_load(path), x_eval, own.reshape(-1))


def test_onnx_rejects_a_matrix_of_the_wrong_width(onnx_pipeline: Artifact, x_eval: Matrix) -> None:
    model = _load(onnx_pipeline.path)
    with pytest.raises(ValueError, match="takes 6 columns"):
        model.predict(x_eval[:, :5])


@pytest.mark.parametrize("fixture", ["forest_pkl", "forest_joblib"])
def test_trusted_pickle_matches_predict_proba_and_warns(
    fixture: str, request: pytest.FixtureRequest, x_eval: Matrix, caplog: pytest.LogCaptureFixture
) -> None:
    artifact: Artifact = request.getfixturevalue(fixture)
    logger = "reportscore.scoring.formats.pickle_format"
    with caplog.at_level(logging.WARNING, logger=logger):
        model = _load(artifact.path, trust_pickle=True)
        _load(artifact.path, trust_pickle=True)
    warnings = [r for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]
    assert len(warnings) == 2, "a warning on every load"
    assert artifact.path.name in warnings[0].getMessage()
    assert isinstance(model, SklearnModel)
    assert model.format == "pickle"
    assert model.estimator.n_jobs == 1, "threads sets n_jobs"
    _assert_scores(model, x_eval, artifact.expected)


# --- refusals ----------------------------------------------------------------------------------------------------
CORRUPT_SUFFIXES = (".json", ".ubj", ".skops", ".onnx", ".pkl", ".joblib")


@pytest.mark.parametrize("suffix", CORRUPT_SUFFIXES)
def test_garbage_file_is_refused(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x00\x01 this is not a model \xff" * 8)
    with pytest.raises(ModelLoadError, match=r"model\.") as info:
        _load(path, trust_pickle=True)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "fixture", ["xgboost_json", "xgboost_ubj", "skops_pipeline", "onnx_pipeline", "forest_pkl", "forest_joblib"]
)
def test_truncated_file_is_refused(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    artifact: Artifact = request.getfixturevalue(fixture)
    data = artifact.path.read_bytes()
    path = tmp_path / artifact.path.name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=path.name) as info:
        _load(path, trust_pickle=True)
    assert "\n" not in str(info.value)


class CustomScaler(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A transformer skops has never heard of: loading it would import and run this module's code."""

    def fit(self, x: Matrix, y: object = None) -> CustomScaler:
        return self

    def transform(self, x: Matrix) -> npt.NDArray[Any]:
        return x / 2


def test_skops_refuses_a_type_outside_the_allow_list(
    train: tuple[Matrix, npt.NDArray[np.int8]], tmp_path: Path
) -> None:
    pipeline = Pipeline([("custom", CustomScaler()), ("clf", LogisticRegression())]).fit(*train)
    path = tmp_path / "custom.skops"
    skops.io.dump(pipeline, path)
    qualified = f"{CustomScaler.__module__}.CustomScaler"
    assert qualified not in TRUSTED_TYPES
    with pytest.raises(ModelLoadError, match=rf"untrusted types .*{qualified}"):
        SkopsFormat().load(path, threads=1)


def test_skops_loads_an_allow_listed_type(
    train: tuple[Matrix, npt.NDArray[np.int8]], x_eval: Matrix, tmp_path: Path
) -> None:
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(*train)
    path = tmp_path / "forest.skops"
    skops.io.dump(forest, path)
    assert skops.io.get_untrusted_types(file=path) == ["sklearn.tree._tree.Tree"]
    _assert_scores(SkopsFormat().load(path, threads=1), x_eval, forest.predict_proba(x_eval)[:, 1])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda x, y: LinearRegression().fit(x, y), "no predict_proba"),
        (lambda x, y: DecisionTreeClassifier(max_depth=2).fit(x, np.arange(len(y)) % 3), "binary classifier is needed"),
        (lambda x, y: LogisticRegression(), "not a fitted classifier"),
    ],
    ids=["regressor", "three-classes", "unfitted"],
)
def test_skops_refuses_what_is_not_a_fitted_binary_classifier(
    make: Callable[[Matrix, npt.NDArray[np.int8]], Any],
    reason: str,
    train: tuple[Matrix, npt.NDArray[np.int8]],
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.skops"
    skops.io.dump(make(*train), path)
    with pytest.raises(ModelLoadError, match=reason):
        SkopsFormat().load(path, threads=1)


class _TouchOnUnpickle:
    """Unpickling this creates a file: proof of whether a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return Path.touch, (self.marker,)


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_pickle_is_refused_unless_trusted(suffix: str, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    for fmt in (PickleFormat(trusted=False), builtin_formats()["pickle"]):
        with pytest.raises(ModelLoadError, match="REPORTSCORE_TRUST_PICKLE=true") as info:
            fmt.load(path, threads=1)
        assert "arbitrary code" in str(info.value)
    assert not marker.exists(), "an untrusted pickle must never be unpickled"


def test_onnx_with_zipmap_output_is_refused_with_a_hint(
    train: tuple[Matrix, npt.NDArray[np.int8]], tmp_path: Path
) -> None:
    pipeline = _pipeline(train)
    onx = convert_sklearn(pipeline, initial_types=[("input", FloatTensorType([None, 6]))])  # zipmap on by default
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(onx.SerializeToString())
    with pytest.raises(ModelLoadError, match=r"zipmap.: False"):
        OnnxFormat().load(path, threads=1)


# --- catalog and lazy imports ------------------------------------------------------------------------------------
def test_catalog_names_and_suffixes_agree() -> None:
    formats = builtin_formats()
    assert sorted(formats) == ["keras", "onnx", "pickle", "remote_v2", "skops", "xgboost"]
    for name, fmt in formats.items():
        assert fmt.name == name
        for suffix in fmt.suffixes:
            assert format_for_suffix(f"model{suffix}") == name
            assert format_for_suffix(f"MODEL{suffix.upper()}") == name
    assert format_for_suffix("model.txt") is None
    assert format_for_suffix("model") is None
    assert format_for_suffix(Path("dir.onnx") / "model.keras") == "keras"


HEAVY_MODULES = ("tensorflow", "keras", "onnxruntime", "skops", "sklearn", "joblib", "xgboost")


def _imported_after(code: str) -> set[str]:
    """Top-level packages a fresh interpreter has imported after running ``code``."""
    script = textwrap.dedent(code) + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


def test_importing_the_formats_imports_no_framework() -> None:
    imported = _imported_after(
        """
        import reportscore.scoring.formats.keras_format
        from reportscore.scoring.formats.catalog import builtin_formats, format_for_suffix
        builtin_formats(trust_pickle=True)
        format_for_suffix("model.keras")
        """
    )
    assert imported.isdisjoint(HEAVY_MODULES), imported & set(HEAVY_MODULES)


def test_serving_an_xgboost_model_never_imports_tensorflow(xgboost_ubj: Artifact) -> None:
    imported = _imported_after(
        f"""
        import numpy as np
        from reportscore.scoring.formats.catalog import builtin_formats
        model = builtin_formats()["xgboost"].load(__import__("pathlib").Path({str(xgboost_ubj.path)!r}), threads=1)
        assert model.predict(np.zeros((3, 6), dtype=np.float32)).shape == (3,)
        """
    )
    assert "xgboost" in imported
    assert imported.isdisjoint({"tensorflow", "keras"})


def test_keras_without_the_extra_asks_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes ``import tensorflow`` raise ImportError
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    path = tmp_path / "model.keras"
    path.write_bytes(b"unused")
    with pytest.raises(ModelLoadError, match=r"pip install 'reportscore\[tensorflow\]'"):
        KerasFormat().load(path, threads=1)
