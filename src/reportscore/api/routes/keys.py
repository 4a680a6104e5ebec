"""API keys over HTTP (admin): create (shown once), list, revoke. The CLI (``reportscore keys``) does the same."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import requires
from reportscore.api.deps import State
from reportscore.api.schemas.keys import LIMITED, UNLIMITED, KeyCreate, KeyCreated, KeyCreateLimited, KeyList, KeyOut
from reportscore.api.schemas.tasks import ErrorBody, ValidationErrorBody
from reportscore.api.schemas.text import Text
from reportscore.api.unions import untagged_union_route
from reportscore.security import keys

router = APIRouter(
    prefix="/keys",
    tags=["keys (admin)"],
    dependencies=[requires("admin")],
    route_class=untagged_union_route(LIMITED, UNLIMITED),
)


@router.post(
    "",
    status_code=201,
    summary="Create an API key (the answer shows it once)",
    response_model=KeyCreated,
    responses={
        422: {
            "model": ValidationErrorBody | ErrorBody,
            "description": "An invalid body (FastAPI's validation errors; `burst_without_rate` for a burst without "
            "a rate), or a request the key store refuses (a reason).",
        }
    },
)
async def create(state: State, body: KeyCreate) -> Any:
    try:
        key, view = await run_in_threadpool(
            lambda: keys.create_key(
                db=state.db,
                tenant=body.tenant,
                name=body.name,
                scopes=list(body.scopes),
                rate=body.rate,
                burst=body.burst if isinstance(body, KeyCreateLimited) else None,
            )
        )
    except keys.KeyError_ as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return KeyCreated(**KeyOut.of(view).model_dump(), key=key)


@router.get("", summary="List API keys (never their secrets)", response_model=KeyList)
async def list_keys(
    state: State,
    tenant: Annotated[Text | None, Query(max_length=128, description="Only this tenant's keys.")] = None,
    include_revoked: Annotated[bool, Query(description="Also list revoked keys.")] = False,
) -> Any:
    views = await run_in_threadpool(lambda: keys.list_keys(db=state.db, tenant=tenant, include_revoked=include_revoked))
    return KeyList(keys=[KeyOut.of(v) for v in views])


@router.delete(
    "/{prefix}",
    status_code=204,
    summary="Revoke an API key (every process refuses it within REPORTSCORE_AUTH_CACHE_S)",
    responses={
        404: {"model": ErrorBody, "description": "No active key with this prefix."},
        422: {"model": ValidationErrorBody, "description": "Not a key prefix (12 hex characters)."},
    },
)
async def revoke(
    state: State,
    prefix: Annotated[str, Path(pattern=keys.PREFIX_PATTERN, description="The key's prefix (12 hex characters).")],
) -> None:
    if not await run_in_threadpool(lambda: keys.revoke_key(db=state.db, prefix=prefix)):
        raise HTTPException(status_code=404, detail=f"no active API key {prefix}")
