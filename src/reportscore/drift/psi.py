"""The population stability index of observed bin counts against a reference's.

``PSI = sum over bins of (a_i - e_i) * ln(a_i / e_i)``, with ``e_i`` and ``a_i`` the reference's and the window's
shares of bin ``i``. A share of 0 (a bin empty on either side, or a category the reference never saw) is replaced by
``EPSILON`` so that the index stays finite; the bins are the union of both sides' labels."""

from __future__ import annotations

import math
from collections.abc import Mapping

EPSILON = 1e-4
"""The share given to an empty bin. Small enough that a bin empty on both sides adds nothing and a bin empty on one
side still counts heavily (a share of 0.1 against 0 adds about 0.1 * ln(1000) = 0.69)."""


def psi(expected: Mapping[str, int], actual: Mapping[str, int], *, epsilon: float = EPSILON) -> float | None:
    """PSI of ``actual`` counts against ``expected`` counts (by bin label); None when either side is empty."""
    n_e = sum(expected.values())
    n_a = sum(actual.values())
    if n_e <= 0 or n_a <= 0:
        return None
    total = 0.0
    for label in set(expected) | set(actual):
        e = max(expected.get(label, 0) / n_e, epsilon)
        a = max(actual.get(label, 0) / n_a, epsilon)
        total += (a - e) * math.log(a / e)
    return total
