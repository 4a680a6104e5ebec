"""Query parameters shared by routes: times are ISO 8601 strings (never numbers), read in UTC, clamped at the
calendar's ends."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def _not_a_number(value: Any) -> Any:
    """Times are ISO 8601 strings: a number (which pydantic would read as a Unix time) is refused."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("expected an ISO 8601 time with a UTC offset, not a number")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_not_a_number)]
"""An ISO 8601 time; one without an offset is read as UTC."""

AwareIsoTime = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""An ISO 8601 time with a UTC offset (one without is refused in FastAPI's validation shape)."""


def utc(value: datetime) -> datetime:
    """``value`` in UTC (naive is UTC); a time so near the calendar's ends that UTC cannot hold it becomes that end."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return EARLIEST if value.year < 2 else LATEST
