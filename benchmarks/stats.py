"""Small, dependency-free helpers: percentiles, ratios, target checks (unit-tested in
tests/unit/test_benchmarks_smoke.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks (numpy's default
    "linear" method); ``None`` for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in 0..100, not {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return float(ordered[lo])
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo))


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max/mean in milliseconds."""
    ms = [v * 1000 for v in latencies_s]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
        "mean_ms": sum(ms) / len(ms) if ms else None,
    }


def ratio(measured: float | None, floor: float | None) -> float | None:
    """``measured / floor``; ``None`` when either is missing or the floor is not positive."""
    if measured is None or floor is None or floor <= 0 or math.isnan(measured) or math.isnan(floor):
        return None
    return measured / floor


def meets(value: float | None, *, at_least: float | None = None, at_most: float | None = None) -> bool | None:
    """Whether ``value`` satisfies the bound(s); ``None`` when it was not measured."""
    if value is None:
        return None
    if at_least is not None and value < at_least:
        return False
    return not (at_most is not None and value > at_most)


def verdict(*checks: bool | None) -> str:
    """ "pass" when every check passed, "fail" when any failed, "n/a" when one was not measured."""
    if any(c is False for c in checks):
        return "fail"
    if any(c is None for c in checks) or not checks:
        return "n/a"
    return "pass"


def fmt_num(value: float | None, digits: int = 0) -> str:
    """A human-readable number for tables: thousands separators, ``-`` for missing."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"
