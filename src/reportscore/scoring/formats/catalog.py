"""The built-in model formats by name, and the format an artifact's file name implies.

Importing this module imports no ML framework: each format imports its own inside ``load``.
"""

from __future__ import annotations

from pathlib import PurePath

from reportscore.scoring.formats.base import ModelFormat
from reportscore.scoring.formats.keras_format import KerasFormat
from reportscore.scoring.formats.onnx_format import OnnxFormat
from reportscore.scoring.formats.pickle_format import PickleFormat
from reportscore.scoring.formats.remote_v2 import RemoteOptions, RemoteV2Format
from reportscore.scoring.formats.skops_format import SkopsFormat
from reportscore.scoring.formats.xgboost_native import XGBoostFormat

_FORMAT_BY_SUFFIX: dict[str, str] = {
    ".json": "xgboost",
    ".ubj": "xgboost",
    ".skops": "skops",
    ".onnx": "onnx",
    ".keras": "keras",
    ".pkl": "pickle",
    ".joblib": "pickle",
}


def builtin_formats(
    *, trust_pickle: bool = False, compile_trees: bool = True, remote: RemoteOptions | None = None
) -> dict[str, ModelFormat]:
    """Every built-in format by name; the pickle format refuses to load unless ``trust_pickle``; XGBoost boosters
    are compiled for ONNX Runtime when ``compile_trees`` and they reproduce the booster; a model served by a V2
    endpoint is called with the timeouts, retries and breaker of ``remote``."""
    formats: list[ModelFormat] = [
        XGBoostFormat(compile_trees=compile_trees),
        SkopsFormat(),
        OnnxFormat(),
        KerasFormat(),
        PickleFormat(trusted=trust_pickle),
        RemoteV2Format(remote),
    ]
    return {fmt.name: fmt for fmt in formats}


def format_for_suffix(filename: str | PurePath) -> str | None:
    """The format name an artifact's file name implies (case-insensitive suffix), or None if none does."""
    return _FORMAT_BY_SUFFIX.get(PurePath(filename).suffix.lower())
