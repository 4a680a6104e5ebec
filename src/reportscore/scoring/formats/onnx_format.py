"""ONNX models (``.onnx``) run by onnxruntime on the CPU.

The graph takes one float tensor ``[N, n_features]`` (columns in feature-schema order) and returns the urgency
probability either as a ``[N, 2]`` class-probability output — the ``probabilities`` output of a scikit-learn
classifier converted by skl2onnx with ``options={"zipmap": False}``; column 1 is the score — or as a single
``[N]`` / ``[N, 1]`` float output already in 0..1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reportscore.scoring.formats.base import FloatMatrix, ModelLoadError, Scores
from reportscore.scoring.formats.skops_format import error_summary

_FLOAT_TENSORS = ("tensor(float)", "tensor(double)")


class OnnxModel:
    """An onnxruntime session and the name and column of its probability output."""

    format = "onnx"
    feature_names: list[str] | None = None

    def __init__(
        self, session: Any, *, input_name: str, output_name: str, column: int | None, n_features: int | None
    ) -> None:
        self._session = session
        self._input_name = input_name
        self._output_names = [output_name]
        self._column = column
        self.n_features = n_features
        """The input width fixed by the graph, or None when it is dynamic."""

    @property
    def session(self) -> Any:
        return self._session

    def predict(self, matrix: FloatMatrix) -> Scores:
        if self.n_features is not None and (matrix.ndim != 2 or matrix.shape[1] != self.n_features):
            raise ValueError(f"the ONNX model takes {self.n_features} columns, got a matrix of shape {matrix.shape}")
        x = np.ascontiguousarray(matrix, dtype=np.float32)
        out = np.asarray(self._session.run(self._output_names, {self._input_name: x})[0])
        scores = out[:, self._column] if self._column is not None else out.reshape(len(x))
        return np.ascontiguousarray(scores, dtype=np.float64)


class OnnxFormat:
    name = "onnx"
    suffixes = (".onnx",)

    def load(self, path: Path, *, threads: int) -> OnnxModel:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
        try:
            session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) derive from Exception only
            raise ModelLoadError(f"{path.name}: not a loadable ONNX model ({error_summary(exc)})") from exc
        input_name, n_features = _input(session, path.name)
        output_name, column = _probability_output(session, path.name)
        return OnnxModel(session, input_name=input_name, output_name=output_name, column=column, n_features=n_features)


def _input(session: Any, name: str) -> tuple[str, int | None]:
    """The one float input ``[N, n_features]``: its name and its width when the graph fixes it."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelLoadError(
            f"{name}: the ONNX model must take one float matrix input, it takes {len(inputs)} ({names})"
        )
    spec = inputs[0]
    if spec.type != "tensor(float)":
        raise ModelLoadError(
            f"{name}: input {spec.name!r} is {spec.type}, expected tensor(float) (convert with FloatTensorType)"
        )
    if len(spec.shape) != 2:
        raise ModelLoadError(f"{name}: input {spec.name!r} has shape {spec.shape}, expected [N, n_features]")
    width = spec.shape[1]
    return spec.name, width if isinstance(width, int) else None


def _probability_output(session: Any, name: str) -> tuple[str, int | None]:
    """The output holding the score, and the column to take from it (None: the output is the score itself)."""
    outputs = session.get_outputs()
    floats = [o for o in outputs if o.type in _FLOAT_TENSORS]
    chosen = next((o for o in floats if o.name == "probabilities"), None)
    if chosen is None and len(floats) == 1:
        chosen = floats[0]
    if chosen is None:
        described = ", ".join(f"{o.name}: {o.type} {o.shape}" for o in outputs)
        hint = (
            " (a ZipMap output: convert with options={'zipmap': False})"
            if any(o.type.startswith("seq(map") for o in outputs)
            else ""
        )
        raise ModelLoadError(f"{name}: no single float probability output among {described}{hint}")
    shape = chosen.shape
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return chosen.name, None
    if len(shape) == 2 and shape[1] == 2:
        return chosen.name, 1
    raise ModelLoadError(
        f"{name}: output {chosen.name!r} has shape {shape}; expected [N, 2] class probabilities, [N, 1] or [N]"
    )
