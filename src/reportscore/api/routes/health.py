"""Liveness, readiness and the proof of concept's heartbeat."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from reportscore.api.deps import AppState, State
from reportscore.api.schemas.tasks import Health, Heartbeat

router = APIRouter(tags=["health"])


@router.get("/heartbeat", response_model=Heartbeat, summary="Heartbeat (proof-of-concept compatible)")
async def heartbeat() -> Heartbeat:
    return Heartbeat(message="Service Ok")


@router.get("/health/live", response_model=Health, summary="Liveness: the process answers")
async def live() -> Health:
    return Health(status="ok", checks={"process": "ok"})


def _check_database(state: AppState) -> str:
    try:
        with state.db.read() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get(
    "/health/ready",
    response_model=Health,
    summary="Readiness: the store and a warmed-up model are usable",
    responses={503: {"model": Health, "description": "Not ready; the body says which check failed."}},
)
async def ready(state: State) -> JSONResponse:
    database = await run_in_threadpool(_check_database, state)
    model = state.registry.current
    checks = {
        "database": database,
        "model": f"{model.name} {model.version}" if state.ready else "loading",
        # reported, never a reason to be unready: accepted jobs wait in the store for the reconciler
        "broker": await run_in_threadpool(state.runner.broker_status),
    }
    ok = database == "ok" and state.ready
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
