"""Tiny real models for registry tests, trained in the test on synthetic reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.synthetic import generate_labels, generate_reports


def training_data(n: int = 3000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    columns = generate_reports(n, seed=seed)
    labels = generate_labels(columns, seed=seed)
    return FeatureSchema.default().encode(columns), np.asarray(labels)


def tiny_xgboost(path: Path, *, n_estimators: int = 15, seed: int = 3) -> Any:
    """An XGBClassifier saved in XGBoost's native format at ``path`` (.json or .ubj); returns the classifier."""
    import xgboost

    x, y = training_data(seed=seed)
    clf = xgboost.XGBClassifier(n_estimators=n_estimators, max_depth=3, n_jobs=1, random_state=seed)
    clf.fit(x, y)
    clf.get_booster().feature_names = FeatureSchema.default().names
    clf.save_model(str(path))
    return clf


def schema_file(path: Path, *, names: list[str] | None = None) -> Path:
    doc = FeatureSchema.default().to_dict()
    if names is not None:
        for feature, name in zip(doc["features"], names, strict=True):
            feature["name"] = name
    path.write_text(json.dumps(doc))
    return path


def sklearn_pipeline(seed: int = 3) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = training_data(seed=seed)
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))]).fit(x, y)


def save_skops(path: Path) -> Any:
    import skops.io

    pipe = sklearn_pipeline()
    skops.io.dump(pipe, path)
    return pipe


def save_onnx(path: Path) -> Any:
    """The sklearn pipeline converted with skl2onnx; returns an onnxruntime session to compare against."""
    import onnxruntime
    from skl2onnx import to_onnx

    pipe = sklearn_pipeline()
    x, _ = training_data(n=10)
    onx = to_onnx(pipe, x[:1], options={"zipmap": False}, target_opset=17)
    path.write_bytes(onx.SerializeToString())
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def save_pickle(path: Path) -> Any:
    import joblib

    pipe = sklearn_pipeline()
    joblib.dump(pipe, path)
    return pipe


def save_keras(path: Path) -> Any:
    import keras

    x, y = training_data(n=2000)
    model = keras.Sequential(
        [
            keras.Input(shape=(x.shape[1],)),
            keras.layers.Normalization(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.layers[0].adapt(x)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y.astype("float32"), epochs=1, batch_size=256, verbose=0)
    model.save(path)
    return model
