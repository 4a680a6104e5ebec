"""XGBoost's native formats (``.json``, ``.ubj``), as written by ``XGBClassifier.save_model``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from reportscore.scoring.formats.base import Contributions, FloatMatrix, ModelLoadError, Scores
from reportscore.scoring.formats.tree_compiler import CompiledTrees, compile_booster

log = logging.getLogger(__name__)


class XGBoostModel:
    """A binary-logistic XGBoost booster; ``inplace_predict`` gives the positive-class probability. When the same
    trees compiled for ONNX Runtime reproduce it (``compiled``, see :mod:`.tree_compiler`), every call uses those: one
    path for every call size, so a report's score never depends on the batch it came in."""

    format = "xgboost"

    def __init__(
        self, booster: object, feature_names: list[str] | None, *, compiled: CompiledTrees | None = None
    ) -> None:
        self._booster = booster
        self.feature_names = feature_names
        self.compiled = compiled

    @property
    def booster(self) -> object:
        return self._booster

    def predict(self, matrix: FloatMatrix) -> Scores:
        if self.compiled is not None:
            return self.compiled.predict(matrix)
        out = self._booster.inplace_predict(matrix, validate_features=False)  # type: ignore[attr-defined]
        scores = np.asarray(out, dtype=np.float64)
        if scores.ndim == 2:  # multi-class softprob: take the positive class of a 2-class model
            scores = scores[:, -1]
        return scores

    def contributions(self, matrix: FloatMatrix) -> Contributions:
        """XGBoost's own SHAP values (``pred_contribs=True``) in log-odds, the bias column dropped."""
        return booster_contributions(self._booster, matrix)


def booster_contributions(booster: object, matrix: FloatMatrix) -> Contributions:
    """``Booster.predict(DMatrix(matrix), pred_contribs=True)`` without its last (bias) column.

    The output is ``[n, n_features + 1]`` for a binary model (``[n, n_classes, n_features + 1]`` for a multi-class
    one, of which the positive class of a 2-class model is taken, as ``predict`` does).
    """
    import xgboost

    dmatrix = xgboost.DMatrix(matrix, feature_names=getattr(booster, "feature_names", None) or None)
    out = np.asarray(booster.predict(dmatrix, pred_contribs=True), dtype=np.float64)  # type: ignore[attr-defined]
    if out.ndim == 3:
        out = out[:, -1, :]
    return np.ascontiguousarray(out[:, :-1])


class XGBoostFormat:
    """Loads ``.json``/``.ubj`` boosters; with ``compile_trees`` (setting ``REPORTSCORE_COMPILE_TREES``, default on)
    they are served by ONNX Runtime's tree ensemble when that reproduces them to 1e-6 (explanations still use the
    booster)."""

    name = "xgboost"
    suffixes = (".json", ".ubj")

    def __init__(self, *, compile_trees: bool = True) -> None:
        self.compile_trees = compile_trees

    def load(self, path: Path, *, threads: int) -> XGBoostModel:
        import xgboost  # imported here: nothing heavy at import time

        if path.suffix not in self.suffixes:
            raise ModelLoadError(f"{path.name}: XGBoost artifacts end in .json or .ubj")
        booster = xgboost.Booster()
        try:
            booster.load_model(str(path))
        except xgboost.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise ModelLoadError(f"{path.name}: not a loadable XGBoost model ({first})") from exc
        booster.set_param({"nthread": threads})
        objective = _objective(booster)
        if objective is not None and not objective.startswith(("binary:", "reg:logistic")):
            raise ModelLoadError(f"{path.name}: objective {objective!r} does not output probabilities in 0..1")
        compiled: CompiledTrees | None = None
        if self.compile_trees:
            outcome = compile_booster(booster, threads=threads)
            if isinstance(outcome, str):
                log.info("XGBoost serves this model itself", extra={"artifact": path.name, "reason": outcome})
            else:
                compiled = outcome
        names = list(booster.feature_names) if booster.feature_names else None
        return XGBoostModel(booster, names, compiled=compiled)


def _objective(booster: object) -> str | None:
    import json

    try:
        config = json.loads(booster.save_config())  # type: ignore[attr-defined]
        return str(config["learner"]["objective"]["name"])
    except (KeyError, ValueError):
        return None
