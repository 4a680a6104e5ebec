"""``GET /models/drift`` (admin): PSI per feature and of the score, per window, against the version's reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import requires
from reportscore.api.deps import State
from reportscore.api.schemas.drift import DriftOut
from reportscore.api.schemas.tasks import ErrorBody
from reportscore.drift.query import DriftQueryError, DriftWindowError, drift_for
from reportscore.durations import parse_duration

router = APIRouter(prefix="/models", tags=["models (admin)"], dependencies=[requires("admin")])


@router.get(
    "/drift",
    summary="Drift per window: PSI of each feature and of the score against the version's reference",
    response_model=DriftOut,
    responses={
        404: {"model": ErrorBody, "description": "Unknown version, or it has no reference distribution."},
        422: {"model": ErrorBody, "description": "A window that is not a multiple of 1h, or a bad range."},
    },
)
async def drift(
    state: State,
    version: Annotated[str | None, Query(description="Model version (default: the champion).")] = None,
    window: Annotated[
        str | None, Query(description="Window length, a multiple of 1h: 1h, 6h, 1d (default: drift_window_s).")
    ] = None,
    since: Annotated[datetime | None, Query(description="First window to include (default: 24 windows ago).")] = None,
    until: Annotated[datetime | None, Query(description="End of the range (default: now).")] = None,
) -> Any:
    settings = state.settings
    try:
        window_s = int(parse_duration(window)) if window is not None else settings.drift_window_s
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"window: {exc}") from None
    end = _utc(until) if until is not None else datetime.now(UTC)
    start = _utc(since) if since is not None else end - timedelta(seconds=24 * window_s)
    if start >= end:
        raise HTTPException(status_code=422, detail="since must be before until")
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
        status = 422 if isinstance(exc, DriftWindowError) else 404
        raise HTTPException(status_code=status, detail=str(exc)) from None
    return DriftOut.of(report)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
