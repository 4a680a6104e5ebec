"""scikit-learn estimators and pipelines saved with ``skops.io.dump`` (``.skops``), loaded against an allow-list.

skops itself trusts plain scikit-learn estimators, numpy arrays and ufuncs and builtin containers; anything else a
file needs is reported by ``skops.io.get_untrusted_types`` and must be in :data:`TRUSTED_TYPES` (inert helper
objects of scikit-learn models: fitted trees, calibrators, optimizer state, ...), or the file is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reportscore.scoring.formats.base import Contributions, FloatMatrix, ModelLoadError, Scores

TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
    }
)
"""Types beyond skops' own defaults that a ``.skops`` artifact may contain (fully qualified names)."""


class SklearnModel:
    """A fitted binary scikit-learn classifier (or pipeline); the score is ``predict_proba(X)[:, 1]``."""

    def __init__(
        self, estimator: Any, *, format_name: str, feature_names: list[str] | None, n_features: int | None
    ) -> None:
        self._estimator = estimator
        self.format = format_name
        self.feature_names = feature_names
        self.n_features = n_features
        """Input columns the estimator was fitted on (``n_features_in_``), when it says."""

    @property
    def estimator(self) -> Any:
        return self._estimator

    def predict(self, matrix: FloatMatrix) -> Scores:
        proba = self._estimator.predict_proba(matrix)
        return np.ascontiguousarray(proba[:, 1], dtype=np.float64)

    def contributions(self, matrix: FloatMatrix) -> Contributions | None:
        """XGBoost's own contributions when the estimator (or a pipeline's last step) is an XGBoost classifier and
        the steps before it keep one column per feature (a scaler, say); None for any other estimator."""
        final, before = self._estimator, None
        steps = getattr(final, "steps", None)
        if isinstance(steps, list) and steps:
            final, before = steps[-1][1], final[:-1]
        get_booster = getattr(final, "get_booster", None)
        if not callable(get_booster):
            return None
        from reportscore.scoring.formats.xgboost_native import booster_contributions

        x = np.asarray(before.transform(matrix) if before is not None else matrix, dtype=np.float32)
        if x.shape != matrix.shape:
            return None
        return booster_contributions(get_booster(), x)


def sklearn_classifier(estimator: Any, *, name: str, format_name: str, threads: int) -> SklearnModel:
    """Check that ``estimator`` is a fitted binary classifier that scores a float matrix, and wrap it.

    ``threads`` is set as ``n_jobs`` on every (nested) estimator that has that parameter.
    """
    if not callable(getattr(estimator, "predict_proba", None)):
        raise ModelLoadError(f"{name}: {type(estimator).__name__} has no predict_proba (a probabilistic classifier)")
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise ModelLoadError(f"{name}: {type(estimator).__name__} is not a fitted classifier (no classes_)")
    if len(classes) != 2:
        raise ModelLoadError(f"{name}: a binary classifier is needed, this one has {len(classes)} classes")
    _set_n_jobs(estimator, threads)
    raw_names = getattr(estimator, "feature_names_in_", None)
    feature_names = [str(n) for n in raw_names] if raw_names is not None else None
    raw_width = getattr(estimator, "n_features_in_", None)
    n_features = int(raw_width) if raw_width is not None else None
    model = SklearnModel(estimator, format_name=format_name, feature_names=feature_names, n_features=n_features)
    if n_features is not None:
        try:
            probe = model.predict(np.zeros((1, n_features), dtype=np.float32))
        except Exception as exc:  # an arbitrary estimator can fail in arbitrary ways
            summary = error_summary(exc)
            raise ModelLoadError(f"{name}: cannot score a float matrix of {n_features} columns ({summary})") from exc
        if probe.shape != (1,):
            raise ModelLoadError(f"{name}: predict_proba returned shape {probe.shape} for one row")
    return model


def _set_n_jobs(estimator: Any, threads: int) -> None:
    """Set ``n_jobs`` wherever the estimator tree has it; objects without scikit-learn's params API are left alone."""
    try:
        keys = [key for key in estimator.get_params(deep=True) if key == "n_jobs" or key.endswith("__n_jobs")]
        if keys:
            estimator.set_params(**dict.fromkeys(keys, threads))
    except (AttributeError, TypeError, ValueError):
        return


class SkopsFormat:
    name = "skops"
    suffixes = (".skops",)

    def load(self, path: Path, *, threads: int) -> SklearnModel:
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(file=path)
        except Exception as exc:  # zipfile.BadZipFile, KeyError, JSONDecodeError, OSError, ...
            raise ModelLoadError(f"{path.name}: not a readable skops file ({error_summary(exc)})") from exc
        refused = sorted(set(untrusted) - TRUSTED_TYPES)
        if refused:
            raise ModelLoadError(f"{path.name}: refusing untrusted types {', '.join(refused)} (not in the allow-list)")
        try:
            estimator = skops.io.load(path, trusted=list(untrusted))
        except Exception as exc:
            raise ModelLoadError(f"{path.name}: skops could not load the model ({error_summary(exc)})") from exc
        return sklearn_classifier(estimator, name=path.name, format_name=self.name, threads=threads)


def error_summary(exc: BaseException) -> str:
    """``Type: first line of the message``, for one-line load errors."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
