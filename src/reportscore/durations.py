"""Durations written the way operators type them: ``90d``, ``24h``, ``30m``, ``45s``."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (a number with one unit of s, m, h, d or w); ValueError when it is not one."""
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(f"{text!r}: expected a number and a unit, e.g. 90d, 24h, 30m or 45s")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return seconds
