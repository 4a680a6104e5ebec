"""The raw-model floor: rows/s of the reference model called in-process, at batch 1, 100 and 1,000.

Measured with the thread setting the service uses (``nthread=1`` per process, this process pinned to one core) and
with every core (``nthread=os.cpu_count()``, no pinning), for both predictors of the reference booster: XGBoost's own
``inplace_predict`` and the same trees compiled for ONNX Runtime, which the service uses when they reproduce the
booster (``REPORTSCORE_COMPILE_TREES``). ``predict`` is the model call on an already encoded float32 matrix;
``encode+predict`` adds the schema's encoding from report dicts.

The scores every response is checked against are XGBoost's own (``expected_scores``), not the compiled trees'.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring.registry import ServingModel, formats_with, load_model_dir

BATCHES = (1, 100, 1000)


PREDICTORS = {"xgboost": False, "compiled": True}
"""Predictor name -> ``compile_trees``."""


def load_reference(threads: int, *, compiled: bool = True) -> ServingModel:
    return load_model_dir(REFERENCE_MODEL_DIR, threads=threads, formats=formats_with([], compile_trees=compiled))


def expected_scores(reports: Sequence[dict[str, Any]]) -> list[float]:
    """XGBoost's own scores for ``reports`` (what every response must match, to 1e-6)."""
    model = load_reference(threads=os.cpu_count() or 1, compiled=False)
    return [float(x) for x in model.model.predict(model.schema.encode_reports(list(reports)))]


def _rate(fn: Any, rows: int, seconds: float) -> tuple[float, float]:
    """(rows/s, microseconds per call) of ``fn()`` repeated for about ``seconds``."""
    fn()
    calls = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        fn()
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - t0
    return rows * calls / elapsed, elapsed / calls * 1e6


def measure(
    reports: Sequence[dict[str, Any]], *, cpus: set[int] | None, threads: int, seconds: float
) -> list[dict[str, Any]]:
    """Rows/s at each batch size with ``threads`` model threads, this process pinned to ``cpus`` (None: all)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus if cpus is not None else set(range(os.cpu_count() or 1)))
    try:
        rows: list[dict[str, Any]] = []
        for predictor, compiled in PREDICTORS.items():
            rows += _measure_model(
                load_reference(threads=threads, compiled=compiled), predictor, reports, cpus, threads, seconds
            )
        return rows
    finally:
        os.sched_setaffinity(0, before)


def _measure_model(
    model: ServingModel,
    predictor: str,
    reports: Sequence[dict[str, Any]],
    cpus: set[int] | None,
    threads: int,
    seconds: float,
) -> list[dict[str, Any]]:
    if predictor == "compiled" and getattr(model.model, "compiled", None) is None:
        return []  # the compiled trees did not reproduce this booster: the service uses XGBoost
    rows: list[dict[str, Any]] = []
    for batch in BATCHES:
        chunk = list(reports[:batch])
        matrix = model.schema.encode_reports(chunk)
        predict_rate, predict_us = _rate(lambda m=matrix: model.model.predict(m), batch, seconds)
        full_rate, full_us = _rate(
            lambda c=chunk: model.model.predict(model.schema.encode_reports(c)), batch, seconds / 2
        )
        rows.append(
            {
                "predictor": predictor,
                "threads": threads,
                "cpus": sorted(cpus) if cpus is not None else "all",
                "batch": batch,
                "predict_rows_per_s": predict_rate,
                "predict_us_per_call": predict_us,
                "encode_predict_rows_per_s": full_rate,
                "encode_predict_us_per_call": full_us,
            }
        )
    return rows


def measure_all(reports: Sequence[dict[str, Any]], *, one_cpu: int, seconds: float) -> list[dict[str, Any]]:
    """The service's setting (1 thread, one core), then all cores."""
    ncpu = os.cpu_count() or 1
    return [
        *measure(reports, cpus={one_cpu}, threads=1, seconds=seconds),
        *measure(reports, cpus=None, threads=ncpu, seconds=seconds),
    ]
