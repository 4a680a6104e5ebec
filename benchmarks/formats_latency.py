"""Predict latency of each model format at batch 1 and 1,000 (median of ``--runs`` calls, threads=1).

Trains a small model of each kind on the synthetic reports (as ``tests/unit/test_formats.py`` does), saves it, loads
it through the format catalog and times ``predict`` on an already encoded float32 matrix. The process is pinned to
one core, as a service process with ``model_threads=1`` would be. With ``--keras-methods`` it also times the ways a
Keras model can be called, which is how ``KerasModel.predict`` was chosen. Prints a Markdown table.

    .venv/bin/python -m benchmarks.formats_latency [--runs 50] [--cpu 0] [--keras-methods]
"""

from __future__ import annotations

import argparse
import functools
import os
import pickle
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.formats.base import LoadedModel
from reportscore.scoring.formats.catalog import builtin_formats, format_for_suffix
from reportscore.scoring.formats.keras_format import KerasModel
from reportscore.scoring.synthetic import generate_labels, generate_reports

BATCHES = (1, 1000)
Matrix = npt.NDArray[np.float32]


def median_us(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of ``fn()`` in microseconds, after a few warm-up calls."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def latencies(predict: Callable[[Matrix], object], matrices: dict[int, Matrix], runs: int) -> dict[int, float]:
    """Median microseconds of ``predict`` per batch size."""
    return {batch: median_us(functools.partial(predict, matrix), runs) for batch, matrix in matrices.items()}


def save_artifacts(directory: Path, x: Matrix, y: npt.NDArray[np.int8], *, with_keras: bool) -> dict[str, Path]:
    """One small trained model per format, saved under ``directory``; label -> artifact path."""
    import joblib
    import skops.io
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    paths: dict[str, Path] = {"xgboost (reference model, .ubj)": REFERENCE_MODEL_DIR / "model.ubj"}
    xgb = XGBClassifier(n_estimators=100, max_depth=4, n_jobs=1, random_state=0).fit(x, y)
    for suffix in (".json", ".ubj"):
        paths[f"xgboost ({suffix}, 100 trees)"] = directory / f"xgb{suffix}"
        xgb.save_model(paths[f"xgboost ({suffix}, 100 trees)"])
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(x, y)
    paths["skops (scaler + logistic regression)"] = directory / "pipeline.skops"
    skops.io.dump(pipeline, paths["skops (scaler + logistic regression)"])
    onx = convert_sklearn(
        pipeline,
        initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
        options={id(pipeline): {"zipmap": False}},
    )
    paths["onnx (same pipeline, skl2onnx)"] = directory / "pipeline.onnx"
    paths["onnx (same pipeline, skl2onnx)"].write_bytes(onx.SerializeToString())
    paths["pickle (same pipeline, .pkl)"] = directory / "pipeline.pkl"
    paths["pickle (same pipeline, .pkl)"].write_bytes(pickle.dumps(pipeline))
    paths["joblib (same pipeline, .joblib)"] = directory / "pipeline.joblib"
    joblib.dump(pipeline, paths["joblib (same pipeline, .joblib)"])
    if with_keras:
        paths["keras (Dense 8 relu + Dense 1 sigmoid)"] = _save_keras(directory / "net.keras", x, y)
    return paths


def _save_keras(path: Path, x: Matrix, y: npt.NDArray[np.int8]) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # what KerasFormat.load(threads=1) sets: before training
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [keras.Input(shape=(x.shape[1],)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, "sigmoid")]
    )
    net.compile(optimizer="adam", loss="binary_crossentropy")
    net.fit(x, y.astype(np.float32), epochs=2, batch_size=64, verbose=0)
    net.save(path)
    return path


def keras_methods(model: Any, matrices: dict[int, Matrix], runs: int) -> list[tuple[str, dict[int, float]]]:
    """Latency of the ways to call a Keras model: eager call, ``predict_on_batch``, a ``tf.function``."""
    import tensorflow as tf

    width = next(iter(matrices.values())).shape[1]
    compiled = tf.function(
        lambda t: model(t, training=False), input_signature=[tf.TensorSpec([None, width], tf.float32)]
    )
    methods: dict[str, Callable[[Matrix], object]] = {
        "keras: model(x, training=False)": lambda m: model(m, training=False).numpy(),
        "keras: predict_on_batch(x)": model.predict_on_batch,
        "keras: tf.function(model)(x)": lambda m: compiled(m).numpy(),
    }
    return [(label, latencies(fn, matrices, runs)) for label, fn in methods.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=50, help="timed calls per format and batch size")
    parser.add_argument("--cpu", type=int, default=0, help="pin this process to this core")
    parser.add_argument("--no-keras", action="store_true", help="skip Keras (the tensorflow extra)")
    parser.add_argument("--keras-methods", action="store_true", help="also time the ways to call a Keras model")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})

    columns = generate_reports(5000, seed=1)
    schema = FeatureSchema.default()
    x, y = schema.encode(columns), generate_labels(columns, seed=1)
    matrices = {b: schema.encode(generate_reports(b, seed=2)) for b in BATCHES}
    formats = builtin_formats(trust_pickle=True)
    rows: list[tuple[str, dict[int, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in save_artifacts(Path(tmp), x, y, with_keras=not args.no_keras).items():
            name = format_for_suffix(path.name)
            assert name is not None
            model: LoadedModel = formats[name].load(path, threads=1)
            rows.append((label, latencies(model.predict, matrices, args.runs)))
            if isinstance(model, KerasModel) and args.keras_methods:
                rows.extend(keras_methods(model.model, matrices, args.runs))

    print(f"predict latency, median of {args.runs} calls, threads=1, pinned to cpu {args.cpu}\n")
    print("| format | batch 1 (µs) | batch 1,000 (µs) | rows/s at 1,000 |")
    print("|---|---:|---:|---:|")
    for label, us in rows:
        print(f"| {label} | {us[1]:,.0f} | {us[1000]:,.0f} | {1000 / us[1000] * 1e6:,.0f} |")


if __name__ == "__main__":
    main()
