"""``GET /models/drift`` (admin): PSI per feature and of the score, per window, against the version's reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import requires
from reportscore.api.deps import State
from reportscore.api.params import EARLIEST, LATEST, IsoTime, utc
from reportscore.api.schemas.drift import DriftOut
from reportscore.api.schemas.tasks import ErrorBody
from reportscore.drift.query import DriftQueryError, DriftWindowError, drift_for
from reportscore.durations import parse_duration

WINDOW_PATTERN = r"^[1-9][0-9]{0,5}[hdw]$"
"""Whole hours, days or weeks (drift is counted per hour), at most 999999 of them."""

_LAST = LATEST - timedelta(days=1)

router = APIRouter(prefix="/models", tags=["models (admin)"], dependencies=[requires("admin")])


@router.get(
    "/drift",
    summary="Drift per window: PSI of each feature and of the score against the version's reference",
    response_model=DriftOut,
    responses={
        404: {"model": ErrorBody, "description": "Unknown version, or it has no reference distribution."},
        400: {"model": ErrorBody, "description": "A window that is not a multiple of the stored resolution."},
    },
)
async def drift(
    state: State,
    version: Annotated[str | None, Query(description="Model version (default: the champion).")] = None,
    window: Annotated[
        str | None,
        Query(
            pattern=WINDOW_PATTERN,
            description="Window length in whole hours, days or weeks: 1h, 6h, 1d, 1w (default: drift_window_s).",
        ),
    ] = None,
    since: Annotated[
        IsoTime | None, Query(description="First window to include, ISO 8601 (default: 24 windows ago).")
    ] = None,
    until: Annotated[IsoTime | None, Query(description="End of the range, ISO 8601 (default: now).")] = None,
) -> Any:
    """Windows aligned to the epoch that start in ``[since, until)``; an empty range (``since >= until``) answers
    no windows. Times without an offset are UTC; times beyond the calendar's ends are clamped to them."""
    settings = state.settings
    window_s = int(parse_duration(window)) if window is not None else settings.drift_window_s
    end = utc(until) if until is not None else datetime.now(UTC)
    if since is not None:
        start = utc(since)
    else:
        try:
            start = end - timedelta(seconds=24 * window_s)
        except OverflowError:
            start = EARLIEST
    try:  # the window that holds the first time must itself start within the calendar
        start = max(start, EARLIEST + timedelta(seconds=window_s))
    except OverflowError:  # a window longer than the calendar: nothing can be in it
        start = LATEST
    # windows are aligned on whole-second timestamps: keep a day's margin before the calendar's end
    start, end = min(start, _LAST), min(end, _LAST)
    empty = start >= end
    try:
        report = await run_in_threadpool(
            lambda: drift_for(
                state.db,
                settings=settings,
                version=version,
                window_s=window_s,
                since=start,
                until=end,
                served_version=state.registry.current.version,
            )
        )
    except DriftQueryError as exc:
        status = 400 if isinstance(exc, DriftWindowError) else 404
        raise HTTPException(status_code=status, detail=str(exc)) from None
    if empty:
        report.windows.clear()
    return DriftOut.of(report)
