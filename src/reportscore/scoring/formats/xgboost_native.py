"""XGBoost's native formats (``.json``, ``.ubj``), as written by ``XGBClassifier.save_model``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reportscore.scoring.formats.base import Contributions, FloatMatrix, ModelLoadError, Scores


class XGBoostModel:
    """A binary-logistic XGBoost booster; ``inplace_predict`` gives the positive-class probability."""

    format = "xgboost"

    def __init__(self, booster: object, feature_names: list[str] | None) -> None:
        self._booster = booster
        self.feature_names = feature_names

    @property
    def booster(self) -> object:
        return self._booster

    def predict(self, matrix: FloatMatrix) -> Scores:
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
    name = "xgboost"
    suffixes = (".json", ".ubj")

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
        return XGBoostModel(booster, list(booster.feature_names) if booster.feature_names else None)


def _objective(booster: object) -> str | None:
    import json

    try:
        config = json.loads(booster.save_config())  # type: ignore[attr-defined]
        return str(config["learner"]["objective"]["name"])
    except (KeyError, ValueError):
        return None
