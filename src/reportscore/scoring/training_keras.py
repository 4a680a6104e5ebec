"""A small Keras network trained on the same synthetic reports as the reference model
(``reportscore train-reference --kind keras``): the TensorFlow counterpart a challenger is built from.

The network takes the feature schema's six encoded columns, scales them with a ``Normalization`` layer adapted on
the training rows (the scaling travels inside the model, so the service sends the raw encoded columns), has one
hidden ``Dense(16, relu)`` layer and ends in one sigmoid unit. It is saved in Keras's own ``.keras`` format, which
the service loads in safe mode. The directory it writes is a model directory like the reference model's:
``model.keras``, ``schema.json``, ``reference.json`` (holdout distributions, for drift) and ``metadata.json``.

TensorFlow is the ``tensorflow`` extra: it is imported when training starts, with a clear message when missing.
Training is seeded (``keras.utils.set_random_seed``); TensorFlow's CPU kernels may still differ in the last bits
between machines, so two runs agree to about 1e-6, not bit for bit.
"""

from __future__ import annotations

import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reportscore.scoring import synthetic
from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.formats.keras_format import KerasFormat, import_tensorflow
from reportscore.scoring.training import (
    HOLDOUT_FRACTION,
    METADATA_NAME,
    MIN_REPORTS,
    MODEL_NAME,
    REFERENCE_NAME,
    SCHEMA_NAME,
    evaluate_holdout,
    progress_display,
    sha256_file,
    write_json,
)

ARTIFACT_NAME = "model.keras"
DEFAULT_VERSION = "2.0.0"
DEFAULT_N_REPORTS = 50_000
DEFAULT_EPOCHS = 4
DEFAULT_SEED = 20261127
HIDDEN_UNITS = 16
BATCH_SIZE = 256


def train_keras(
    output_dir: Path,
    *,
    version: str = DEFAULT_VERSION,
    n_reports: int = DEFAULT_N_REPORTS,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = DEFAULT_SEED,
    threads: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the network on synthetic reports, write its model directory into ``output_dir`` and return the
    holdout metrics (``holdout_roc_auc``, ``holdout_log_loss``, ``holdout_positive_rate``, ``holdout_mean_score``)."""
    if n_reports < MIN_REPORTS:
        raise ValueError(f"n_reports must be at least {MIN_REPORTS}, got {n_reports}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    _, keras = import_tensorflow(threads)  # a clear ModelLoadError when the extra is missing
    output_dir.mkdir(parents=True, exist_ok=True)
    schema = FeatureSchema.default()
    n_holdout = round(n_reports * HOLDOUT_FRACTION)
    n_train = n_reports - n_holdout

    started = time.perf_counter()
    with progress_display(enabled=progress) as display:
        phases = display.add_task("Training the Keras network", total=4)
        display.update(phases, description=f"Generating {n_reports:,} synthetic reports")
        columns = synthetic.generate_reports(n_reports, seed=seed)
        labels = synthetic.generate_labels(columns, seed=seed).astype(np.float32)
        matrix = schema.encode(columns)
        x_train, x_holdout = matrix[:n_train], matrix[n_train:]
        y_train, y_holdout = labels[:n_train], labels[n_train:]
        display.advance(phases)

        display.update(phases, description="Fitting")
        keras.utils.set_random_seed(seed % (2**31))
        normalize = keras.layers.Normalization()
        normalize.adapt(x_train)
        model = keras.Sequential(
            [
                keras.Input(shape=(len(schema.names),)),
                normalize,
                keras.layers.Dense(HIDDEN_UNITS, activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(optimizer="adam", loss="binary_crossentropy")
        epoch_bar = display.add_task("Epochs", total=epochs)
        advance = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: display.advance(epoch_bar))
        model.fit(x_train, y_train, epochs=epochs, batch_size=BATCH_SIZE, verbose=0, callbacks=[advance])
        display.advance(phases)

        display.update(phases, description="Writing model and schema")
        artifact = output_dir / ARTIFACT_NAME
        model.save(artifact)
        schema.save(output_dir / SCHEMA_NAME)
        training_seconds = time.perf_counter() - started
        display.advance(phases)

        display.update(phases, description="Evaluating the holdout")
        # Through the service's own loading path (safe mode, traced call): the metrics of the artifact as served.
        holdout_columns = {name: values[n_train:] for name, values in columns.items()}
        model_as_served = KerasFormat().load(artifact, threads=threads)
        metrics, _ = evaluate_holdout(output_dir, model_as_served, x_holdout, y_holdout, holdout_columns)
        metadata = {
            "name": MODEL_NAME,
            "version": version,
            "format": "keras",
            "artifact": ARTIFACT_NAME,
            "sha256": sha256_file(artifact),
            "schema": SCHEMA_NAME,
            "reference": REFERENCE_NAME,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "synthetic": True,
            "description": "Small Keras network on synthetic reports (normalisation inside the model).",
            "feature_names": schema.names,
            "training": {
                "estimator": "keras.Sequential",
                "layers": ["Normalization", f"Dense({HIDDEN_UNITS}, relu)", "Dense(1, sigmoid)"],
                "optimizer": "adam",
                "loss": "binary_crossentropy",
                "epochs": epochs,
                "batch_size": BATCH_SIZE,
                "training_seconds": round(training_seconds, 3),
            },
            "data": {
                "generator": synthetic.__name__,
                "seed": seed,
                "n_reports": n_reports,
                "n_train": n_train,
                "n_holdout": n_holdout,
            },
            "metrics": metrics,
            "keras_version": keras.__version__,
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "reproduce": f"reportscore train-reference --kind keras --n-reports {n_reports} --seed {seed} "
            f"--epochs {epochs} --version {version}",
        }
        write_json(output_dir / METADATA_NAME, metadata)
        display.advance(phases)
        display.update(phases, description=f"Done: holdout ROC AUC {metrics['holdout_roc_auc']:.4f}")
    return metrics
