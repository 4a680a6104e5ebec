"""Submit a batch of reports (``/predict``, alias ``/submit``) and read its task (``/task/{task_id}``)."""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import Principal, requires
from reportscore.api.deps import AppState, State, require_json
from reportscore.api.schemas.reports import EXAMPLE_REPORTS, ReportIn
from reportscore.api.schemas.tasks import (
    ErrorBody,
    ModelInfo,
    ReportRef,
    ScoreResponse,
    TaskAccepted,
    TaskPending,
    TaskResult,
    Timings,
    ValidationErrorBody,
)
from reportscore.reports import service as reports_service
from reportscore.settings import Settings

READ_TASK_OPERATION = "read_task"

TASK_LINKS: dict[str, Any] = {
    "ReadTask": {
        "operationId": READ_TASK_OPERATION,
        "parameters": {"task_id": "$response.body#/task_id"},
        "description": "Poll the accepted task (the same URL as the Location header).",
    }
}

SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": TaskAccepted,
        "description": "Stored durably and queued; poll the Location.",
        "headers": {
            "Location": {"description": "`/task/<task_id>`: where to read the result.", "schema": {"type": "string"}}
        },
        "links": TASK_LINKS,
    },
    409: {"model": ErrorBody, "description": "This Idempotency-Key was already used with a different body."},
    413: {"model": ErrorBody, "description": "Request body over the size limit."},
    415: {"model": ErrorBody, "description": "The body is not declared as JSON (Content-Type: application/json)."},
    422: {
        "model": ValidationErrorBody,
        "description": "Invalid reports or malformed JSON (FastAPI's validation errors).",
    },
    503: {
        "model": ErrorBody,
        "description": "Too many pending jobs, or the store is unavailable; retry after the Retry-After header.",
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    },
}


def build_router(settings: Settings) -> APIRouter:
    """Routes whose validation depends on settings (the maximum batch size appears in the OpenAPI schema)."""
    router = APIRouter(tags=["scoring"])
    Reports = Annotated[  # noqa: N806
        list[ReportIn],
        Body(
            min_length=1,
            max_length=settings.max_reports_per_request,
            description=f"1 to {settings.max_reports_per_request} reports, scored in this order.",
            examples=[EXAMPLE_REPORTS],
        ),
    ]
    IdempotencyKey = Annotated[  # noqa: N806
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Retrying a POST with the same key and body returns the same task instead of a new one.",
        ),
    ]

    async def submit(
        request: Request,
        reports: Reports,
        state: State,
        principal: Annotated[Principal, requires("submit")],
        idempotency_key: IdempotencyKey = None,
    ) -> Any:
        return await _submit(request, state, principal, reports, idempotency_key)

    for path, name in (
        ("/predict", "Submit reports for scoring"),
        ("/submit", "Submit reports (alias of /predict)"),
    ):
        router.add_api_route(
            path,
            submit,
            methods=["POST"],
            status_code=202,
            summary=name,
            response_model=TaskAccepted,
            responses=SUBMIT_RESPONSES,
            dependencies=[Depends(require_json)],
            operation_id="submit_reports" if path == "/predict" else "submit_reports_alias",
        )

    @router.post(
        "/score",
        summary="Score reports synchronously, in this request",
        response_model=ScoreResponse,
        responses={k: v for k, v in SUBMIT_RESPONSES.items() if k in (413, 415, 422, 503)},
        dependencies=[Depends(require_json)],
    )
    async def score(
        request: Request,
        reports: Reports,
        state: State,
        principal: Annotated[Principal, requires("submit")],
        persist: Annotated[
            bool, Query(description="Store the reports and scores (committed before the answer). false: only score.")
        ] = True,
    ) -> Any:
        return await _score(request, state, principal, reports, persist)

    @router.get(
        "/task/{task_id}",
        summary="Read a task: pending, or its scores",
        operation_id=READ_TASK_OPERATION,
        response_model=TaskResult,
        responses={
            202: {"model": TaskPending, "description": "Not done yet."},
            404: {"model": ErrorBody, "description": "No task with this id."},
            422: {"model": ValidationErrorBody, "description": "Invalid `wait`."},
            503: SUBMIT_RESPONSES[503] | {"description": "The store is unavailable; retry after Retry-After."},
        },
    )
    async def read_task(
        request: Request,
        task_id: str,
        state: State,
        principal: Annotated[Principal, requires("read")],
        wait: Annotated[
            float,
            Query(ge=0, description="Long-poll: wait up to this many seconds for the task to finish (capped)."),
        ] = 0.0,
    ) -> Any:
        return await _read_task(request, state, principal, task_id, wait)

    return router


async def _submit(
    request: Request, state: AppState, principal: Principal, reports: list[ReportIn], idempotency_key: str | None
) -> Any:
    runner = state.runner
    if not runner.has_capacity():
        return JSONResponse(
            {"detail": f"too many pending jobs ({runner.pending()}); retry later"},
            status_code=503,
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    payload = [r.model_dump() for r in reports]
    work = reports_service.submission(
        reports=payload, owner=principal.tenant, idempotency_key=idempotency_key, ttl_s=state.settings.idempotency_ttl_s
    )
    runner.reserve()
    try:
        try:
            submitted = await state.committer.run(work)
        except IntegrityError:
            if idempotency_key is None:
                raise
            submitted = await state.committer.run(work)  # lost a race for this key: now it reads the winner's job
    except reports_service.IdempotencyConflict:
        runner.release()
        return JSONResponse(
            {"detail": "this Idempotency-Key was already used with a different request body"}, status_code=409
        )
    except BaseException:
        runner.release()
        raise
    if submitted.created:
        runner.submit(submitted.job_id, len(payload))
    else:
        runner.release()
    request.state.task_id = submitted.job_id
    return JSONResponse(
        TaskAccepted(task_id=submitted.job_id).model_dump(),
        status_code=202,
        headers={"Location": f"/task/{submitted.job_id}"},
    )


async def _wait_for_task(state: AppState, owner: str, task_id: str, wait: float) -> reports_service.TaskView | None:
    """Long-poll: read once, then sleep until the job's finish is announced (no polling while notifications are
    reliable; a re-read once a second while they are not)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with state.notifier.subscribe(task_id) as finished:  # subscribe before reading: no finish is missed
        view = await run_in_threadpool(reports_service.get_task, db=state.db, task_id=task_id, owner=owner)
        while view is not None and not view.done:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            timeout = remaining if state.notifier.reliable else min(remaining, 1.0)
            try:
                await asyncio.wait_for(finished.wait(), timeout=timeout)
            except TimeoutError:
                if state.notifier.reliable and loop.time() >= deadline:
                    break
            finished.clear()
            view = await run_in_threadpool(reports_service.get_task, db=state.db, task_id=task_id, owner=owner)
    return view


async def _score(
    request: Request, state: AppState, principal: Principal, reports: list[ReportIn], persist: bool
) -> Any:
    received_at = datetime.now(UTC)
    payload = [r.model_dump() for r in reports]
    scored = await state.batcher.score(payload)
    task_id = None
    if persist:
        task_id = await state.committer.run(
            reports_service.scored_submission(
                reports=payload,
                scores=scored.scores,
                owner=principal.tenant,
                model_name=scored.model.name,
                model_version=scored.model.version,
                predict_ms=scored.predict_ms,
                received_at=received_at,
            )
        )
        request.state.task_id = task_id
    body = ScoreResponse(
        score=scored.scores,
        model=ModelInfo(name=scored.model.name, version=scored.model.version),
        task_id=task_id,
    )
    return JSONResponse(body.model_dump())


def _not_found(task_id: str) -> JSONResponse:
    return JSONResponse({"detail": f"task {task_id} not found"}, status_code=404)


async def _read_task(request: Request, state: AppState, principal: Principal, task_id: str, wait: float) -> Any:
    try:
        uuid.UUID(task_id)
    except ValueError:
        return _not_found(task_id)
    request.state.task_id = task_id
    wait = min(wait, state.settings.long_poll_max_s)
    if wait > 0:
        view = await _wait_for_task(state, principal.tenant, task_id, wait)
    else:
        view = await run_in_threadpool(reports_service.get_task, db=state.db, task_id=task_id, owner=principal.tenant)
    if view is None:
        return _not_found(task_id)
    if not view.done:
        status = "STARTED" if view.status == "STARTED" else "PENDING"
        return JSONResponse(TaskPending(task_id=task_id, status=status).model_dump(), status_code=202)
    return JSONResponse(_result(view).model_dump(mode="json"), status_code=200)


def _ms(a: Any, b: Any) -> float | None:
    return None if a is None or b is None else round((b - a).total_seconds() * 1000, 3)


def _result(view: reports_service.TaskView) -> TaskResult:
    success = view.status == "SUCCESS"
    return TaskResult(
        task_id=view.task_id,
        status="SUCCESS" if success else "FAILURE",
        score=[r.score for r in view.reports if r.score is not None] if success and view.reports else None,
        error=None if success else (view.error or "scoring failed"),
        model=ModelInfo(name=view.model_name, version=view.model_version)
        if view.model_name and view.model_version
        else None,
        reports=[ReportRef(id=r.id, report_id=r.client_report_id) for r in view.reports] if view.reports else None,
        n_reports=view.n_reports,
        attempts=view.attempts,
        created_at=view.created_at,
        started_at=view.started_at,
        finished_at=view.finished_at,
        timings=Timings(
            queued_ms=_ms(view.created_at, view.started_at),
            predict_ms=round(view.predict_ms, 3) if view.predict_ms is not None else None,
            total_ms=_ms(view.created_at, view.finished_at),
        ),
    )
