"""pickle / joblib artifacts (``.pkl``, ``.joblib``) of scikit-learn-API classifiers, only when explicitly trusted.

Unpickling runs whatever code the file names, so a malicious artifact owns the process: this format refuses to
load unless the service was started with ``REPORTSCORE_TRUST_PICKLE=true``, and warns on every load when it was.
"""

from __future__ import annotations

import logging
from pathlib import Path

from reportscore.scoring.formats.base import ModelLoadError
from reportscore.scoring.formats.skops_format import SklearnModel, error_summary, sklearn_classifier

log = logging.getLogger(__name__)


class PickleFormat:
    name = "pickle"
    suffixes = (".pkl", ".joblib")

    def __init__(self, *, trusted: bool = False) -> None:
        self.trusted = trusted

    def load(self, path: Path, *, threads: int) -> SklearnModel:
        if not self.trusted:
            raise ModelLoadError(
                f"{path.name}: refusing a pickle/joblib artifact: loading it can run arbitrary code. Save the model "
                "with skops or convert it to ONNX, or, only for artifacts you built yourself, set "
                "REPORTSCORE_TRUST_PICKLE=true"
            )
        log.warning(
            "loading pickle/joblib model %s: unpickling runs any code the file contains (trust_pickle is on)",
            path.name,
            extra={"artifact": path.name},
        )
        import joblib

        try:
            estimator = joblib.load(path)  # joblib reads plain pickles too
        except Exception as exc:  # unpickling can fail with almost any exception type
            raise ModelLoadError(f"{path.name}: not a loadable pickle/joblib file ({error_summary(exc)})") from exc
        return sklearn_classifier(estimator, name=path.name, format_name=self.name, threads=threads)
