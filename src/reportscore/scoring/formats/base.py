"""The model-format seam: ``load(path) -> LoadedModel`` and ``LoadedModel.predict(matrix) -> scores``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]


class ModelLoadError(RuntimeError):
    """An artifact could not be loaded or does not fit its feature schema."""


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
