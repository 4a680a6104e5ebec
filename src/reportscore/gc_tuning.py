"""Garbage-collector settings for serving processes: the API (at the end of its start-up) and Celery workers.

Measured in the benchmarks with CPython's default thresholds (700, 10, 10): the cyclic collector took ~10% of a loaded
embedded process's CPU and tens of milliseconds of pause in the latency tail, and ~20% of a distributed API process's
time (gc.callbacks: 3.8 s in a ~35 s run, 0.8 s after this), mostly full
collections walking the objects created at import (Celery, kombu, SQLAlchemy, the model). Freezing what exists once
start-up is done takes it out of every later collection, and a larger first threshold collects the young
generation less often; cyclic garbage is still collected, only in larger steps.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Allocations (minus deallocations) between collections of the youngest generation (CPython's default: 700)."""


def tune_gc() -> None:
    """Collect once, freeze every surviving object (start-up state: modules, app, model), raise the young
    threshold. Call it when start-up is done (and again in a forked child after its own start-up)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
