"""Online quality metrics over HTTP (admin): ``GET /models/metrics``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import requires
from reportscore.api.deps import State
from reportscore.api.params import IsoTime, utc
from reportscore.api.schemas.quality import MetricsOut
from reportscore.api.schemas.tasks import ErrorBody
from reportscore.quality import service as quality_service
from reportscore.storage.repositories.quality import WINDOW_S

router = APIRouter(prefix="/models", tags=["models (admin)"], dependencies=[requires("admin")])


MAX_WINDOW_S = 100 * 366 * 86400


@router.get(
    "/metrics",
    summary="Online quality per model version and window, from moderators' outcomes",
    response_model=MetricsOut,
    responses={400: {"model": ErrorBody, "description": "A time without a UTC offset."}},
)
async def metrics(
    state: State,
    version: Annotated[str | None, Query(description="One version (default: every version with outcomes).")] = None,
    since: Annotated[IsoTime | None, Query(description="Reports scored from (ISO 8601, with offset).")] = None,
    until: Annotated[IsoTime | None, Query(description="Reports scored before (ISO 8601, with offset).")] = None,
    window: Annotated[
        int | None,
        Query(
            gt=0,
            le=MAX_WINDOW_S,
            multiple_of=WINDOW_S,
            description="Split into windows of this many seconds (a multiple of 3600, at most 100 years).",
        ),
    ] = None,
    k: Annotated[
        int | None, Query(gt=0, description="The k of precision@k (default REPORTSCORE_QUALITY_PRECISION_K).")
    ] = None,
) -> Any:
    """Kept as outcomes arrive (hourly aggregates per version and score bin); credited to the version that scored
    each report. Hour resolution: an hour counts when it starts in ``[since, until)``."""
    for value in (since, until):
        if value is not None and value.tzinfo is None:
            raise HTTPException(status_code=400, detail="since and until need a UTC offset")
    since = None if since is None else utc(since)
    until = None if until is None else utc(until)
    settings = state.settings
    try:
        windows = await run_in_threadpool(
            lambda: quality_service.version_metrics(
                db=state.db,
                model_name=settings.model_name,
                version=version,
                since=since,
                until=until,
                window_s=window,
                k=k or settings.quality_precision_k,
            )
        )
    except quality_service.InvalidWindow as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"model_name": settings.model_name, "windows": [w.as_dict() for w in windows]}
