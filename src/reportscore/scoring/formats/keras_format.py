"""Keras 3 models (``.keras``) on TensorFlow, an optional extra: ``pip install 'reportscore[tensorflow]'``.

TensorFlow is imported on the first ``load``, never at import time, so a process serving another format does not
pay for it. Files are loaded with ``safe_mode=True`` (no ``Lambda`` layers or other arbitrary code) and without
their training configuration. The model takes one ``[N, n_features]`` float input and ends in a one-unit sigmoid.
"""

from __future__ import annotations

import logging
import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reportscore.scoring.formats.base import FloatMatrix, ModelLoadError, Scores
from reportscore.scoring.formats.skops_format import error_summary

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'reportscore[tensorflow]'"

_threads_lock = threading.Lock()
_configured_threads: int | None = None


class KerasModel:
    """A loaded Keras model called through a traced ``tf.function`` (``model(x, training=False)``, compiled once).

    Measured on a small dense network, one core: about 20% faster than ``predict_on_batch`` and 5x faster than an
    eager ``model(x, training=False)`` at batch 1 and 1,000 (``benchmarks/formats_latency.py --keras-methods``).
    """

    format = "keras"
    feature_names: list[str] | None = None

    def __init__(self, model: Any, *, call: Callable[[Any], Any], n_features: int | None) -> None:
        self._model = model
        self._call = call
        self.n_features = n_features
        """The input width the model was built for, or None when it is not fixed."""

    @property
    def model(self) -> Any:
        return self._model

    def predict(self, matrix: FloatMatrix) -> Scores:
        if self.n_features is not None and (matrix.ndim != 2 or matrix.shape[1] != self.n_features):
            raise ValueError(f"the Keras model takes {self.n_features} columns, got a matrix of shape {matrix.shape}")
        out = self._call(np.asarray(matrix, dtype=np.float32)).numpy()
        return np.ascontiguousarray(out.reshape(len(matrix)), dtype=np.float64)


class KerasFormat:
    name = "keras"
    suffixes = (".keras",)

    def load(self, path: Path, *, threads: int) -> KerasModel:
        tf, keras = import_tensorflow(threads)
        if not zipfile.is_zipfile(path):  # Keras itself reports any non-zip file as "File not found"
            raise ModelLoadError(f"{path.name}: not a loadable Keras model (not a .keras zip archive)")
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # zipfile.BadZipFile, ValueError (unsafe or unknown layers), OSError, ...
            raise ModelLoadError(f"{path.name}: not a loadable Keras model ({error_summary(exc)})") from exc
        n_features = _check_shapes(model, path.name)
        call = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec(shape=[None, n_features], dtype=tf.float32)],
        )
        try:
            call.get_concrete_function()  # trace now: a model that cannot run on a float matrix fails to load
        except Exception as exc:
            raise ModelLoadError(
                f"{path.name}: the Keras model cannot score a float matrix ({error_summary(exc)})"
            ) from exc
        return KerasModel(model, call=call, n_features=n_features)


def import_tensorflow(threads: int) -> tuple[Any, Any]:
    """Import TensorFlow (quietly) and Keras, and set TensorFlow's thread pools once per process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ModelLoadError(f"Keras models need TensorFlow, which is not installed: {INSTALL_HINT}") from exc
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ModelLoadError(f"Keras runs on the {keras.backend.backend()!r} backend; unset KERAS_BACKEND")
    _configure_threads(tf, threads)
    return tf, keras


def _configure_threads(tf: Any, threads: int) -> None:
    global _configured_threads
    with _threads_lock:
        if _configured_threads is not None:
            if _configured_threads != threads:
                log.warning(
                    "TensorFlow already uses %d threads per op; %d requested, kept %d",
                    _configured_threads,
                    threads,
                    _configured_threads,
                )
            return
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow was initialised before the first Keras model was loaded
            log.warning("TensorFlow was initialised already: its thread pools keep their size, not %d", threads)
        _configured_threads = threads


def _check_shapes(model: Any, name: str) -> int | None:
    """One ``[N, n_features]`` input and one ``[N]`` / ``[N, 1]`` output; returns ``n_features`` when fixed."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as exc:  # a subclassed model that was never built
        raise ModelLoadError(f"{name}: the Keras model has no defined inputs and outputs ({exc})") from exc
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(f"{name}: need one input and one output, the model has {len(inputs)} and {len(outputs)}")
    in_shape, out_shape = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(in_shape) != 2:
        raise ModelLoadError(f"{name}: input shape {in_shape} is not [N, n_features]")
    if not (len(out_shape) == 1 or (len(out_shape) == 2 and out_shape[1] == 1)):
        raise ModelLoadError(f"{name}: output shape {out_shape} is not [N, 1] (one sigmoid unit)")
    width = in_shape[1]
    return int(width) if width is not None else None
