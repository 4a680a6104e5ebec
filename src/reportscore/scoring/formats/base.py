"""The model-format seam: ``load(path) -> LoadedModel`` and ``LoadedModel.predict(matrix) -> scores``.

A loaded model may also offer the optional ``contributions(matrix)`` capability (:class:`ExplainableModel`): the
per-feature contributions the model itself computes for each row. :func:`contributions_of` asks for it and answers
None for a model that does not offer it, so formats without contributions need no change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]
Contributions = npt.NDArray[np.float64]


class ModelLoadError(RuntimeError):
    """An artifact could not be loaded or does not fit its feature schema."""


class ModelUnavailableError(RuntimeError):
    """The model's runtime did not answer (a remote endpoint down, timing out or overloaded): retryable.

    Scoring leaves the job to be tried again later rather than failing it, until its attempts are used up."""


class LoadedModel(Protocol):
    """A model in memory, ready to score."""

    @property
    def format(self) -> str: ...

    @property
    def feature_names(self) -> list[str] | None: ...

    def predict(self, matrix: FloatMatrix) -> Scores:
        """Scores in 0..1, one per row of ``matrix`` (columns in feature-schema order)."""
        ...


class ModelFormat(Protocol):
    """Loads artifacts of one format."""

    @property
    def name(self) -> str: ...

    @property
    def suffixes(self) -> tuple[str, ...]: ...

    def load(self, path: Path, *, threads: int) -> LoadedModel: ...


@runtime_checkable
class ExplainableModel(Protocol):
    """A loaded model that can say how much each feature moved each row's score."""

    def contributions(self, matrix: FloatMatrix) -> Contributions | None:
        """``[n_rows, n_features]`` signed contributions (columns in feature-schema order, no bias column) on the
        model's own scale (log-odds for XGBoost), or None when this particular model cannot give them."""
        ...


def contributions_of(model: object, matrix: FloatMatrix) -> Contributions | None:
    """The model's own per-feature contributions for ``matrix``, or None when its format does not offer them."""
    if not isinstance(model, ExplainableModel):
        return None
    out = model.contributions(matrix)
    if out is None:
        return None
    if out.shape != matrix.shape:
        raise ValueError(f"contributions of shape {out.shape} for a matrix of shape {matrix.shape}")
    return out
