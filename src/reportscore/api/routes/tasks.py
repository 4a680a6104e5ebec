"""Submit a batch of reports (``/predict``, alias ``/submit``) and read its task (``/task/{task_id}``)."""

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BeforeValidator, Discriminator, Field, Tag, TypeAdapter
from pydantic_core import PydanticCustomError
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import Principal, requires
from reportscore.api.deps import AppState, require_json
from reportscore.api.results import result_body, task_result, task_result_json
from reportscore.api.schemas.reports import EXAMPLE_CALLBACK_URL, EXAMPLE_REPORTS, ReportIn, SubmitBodyBase
from reportscore.api.schemas.tasks import (
    ErrorBody,
    ExplainedReportRef,
    Reason,
    ScoreResponse,
    TaskAccepted,
    TaskPending,
    TaskResult,
    ValidationErrorBody,
)
from reportscore.api.unions import UntaggedUnionRoute
from reportscore.callbacks.urls import AllowList, UnsafeCallbackUrl, check_url
from reportscore.moderation import service as moderation_service
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
        "description": "Invalid reports or malformed JSON (FastAPI's validation errors), or a callback_url that is "
        "refused (not http(s), not public, callbacks disabled).",
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
    ReportList = Annotated[  # noqa: N806
        list[ReportIn],
        Field(
            min_length=1,
            max_length=settings.max_reports_per_request,
            description=f"1 to {settings.max_reports_per_request} reports, scored in this order.",
        ),
    ]

    if TYPE_CHECKING:
        Submission = list[ReportIn] | SubmitBodyBase  # noqa: N806
    else:
        Submission = _submission_body(settings, ReportList)  # noqa: N806  # the object form: only with callbacks on
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
        body: Submission,
        principal: Annotated[Principal, requires("submit")],
        idempotency_key: IdempotencyKey = None,
    ) -> Any:
        state = _state(request)
        if isinstance(body, SubmitBodyBase):
            reports, callback_url = body.reports, body.callback_url
        else:
            reports, callback_url = body, None
        if callback_url is not None:
            await _check_callback_url(state, callback_url)
        return await _submit(request, state, principal, reports, idempotency_key, callback_url)

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
            route_class_override=SubmissionRoute,
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
        principal: Annotated[Principal, requires("submit")],
        persist: Annotated[
            bool, Query(description="Store the reports and scores (committed before the answer). false: only score.")
        ] = True,
    ) -> Any:
        return await _score(request, _state(request), principal, reports, persist)

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
        principal: Annotated[Principal, requires("read")],
        wait: Annotated[
            float,
            Query(ge=0, description="Long-poll: wait up to this many seconds for the task to finish (capped)."),
        ] = 0.0,
        explain: Annotated[
            bool,
            Query(description="Add each report's top reasons (feature contributions of the model that scored it)."),
        ] = False,
    ) -> Any:
        return await _read_task(request, _state(request), principal, task_id, wait, explain)

    return router


LIST_FORM = "form:list"
OBJECT_FORM = "form:object"
"""Union tags (never a field name: they hold a colon), left out of error locations by :class:`SubmissionRoute`."""

CALLBACKS_DISABLED = (
    "callbacks are not enabled on this deployment (the operator sets REPORTSCORE_CALLBACKS_ENABLED=true "
    "and REPORTSCORE_CALLBACK_SECRET): send the list of reports as the body and poll GET /task/{task_id}"
)


def _submission_body(settings: Settings, report_list: Any) -> Any:
    """The body of ``/predict`` and ``/submit``: with callbacks enabled, a list of reports or an object with the
    reports and a ``callback_url``; otherwise only the list (the object form is not in the schema, and sending it
    is a 422 ``callbacks_disabled``)."""
    if not settings.callbacks_enabled:
        return Annotated[
            report_list,
            BeforeValidator(_refuse_object_form),
            Body(
                description="A list of reports (the original form).",
                openapi_examples={"list": {"summary": "A list of reports", "value": EXAMPLE_REPORTS}},
            ),
        ]

    class SubmitBody(SubmitBodyBase):
        reports: report_list

    return Annotated[
        Annotated[report_list, Tag(LIST_FORM)] | Annotated[SubmitBody, Tag(OBJECT_FORM)],
        Discriminator(_body_form),
        Body(
            description="A list of reports (the original form), or an object with the reports and a callback_url.",
            openapi_examples={
                "list": {"summary": "A list of reports", "value": EXAMPLE_REPORTS},
                "object": {
                    "summary": "Reports and a callback URL",
                    "value": {"reports": EXAMPLE_REPORTS, "callback_url": EXAMPLE_CALLBACK_URL},
                },
            },
        ),
    ]


def _refuse_object_form(value: Any) -> Any:
    if isinstance(value, dict):
        raise PydanticCustomError("callbacks_disabled", CALLBACKS_DISABLED)
    return value


def _body_form(value: Any) -> str:
    """Which form a submission body has: only that form's errors are reported (anything but an object is read as
    the list form, whose error says a list was expected)."""
    return OBJECT_FORM if isinstance(value, dict) else LIST_FORM


class SubmissionRoute(UntaggedUnionRoute):
    """Validation errors of a submission keep the proof of concept's ``loc``: ``[body, index, field]`` for the
    list form and ``[body, "reports", index, field]`` for the object form, without the form's tag; an object sent
    while callbacks are disabled is located at its ``callback_url`` (at the body when it has none)."""

    union_tags = frozenset({LIST_FORM, OBJECT_FORM})

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise RequestValidationError([_at_callback_url(e) for e in exc.errors()], body=exc.body) from None

        return handle


def _at_callback_url(error: Any) -> Any:
    sent = error.get("input")
    if error.get("type") != "callbacks_disabled" or not isinstance(sent, dict) or "callback_url" not in sent:
        return error
    return {**error, "loc": ("body", "callback_url"), "input": sent["callback_url"]}


def _callback_error(kind: str, message: str, url: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body", "callback_url"), "msg": message, "input": url}])


async def _check_callback_url(state: AppState, url: str) -> None:
    """422 unless the URL is http(s) and resolves to allowed addresses only (the object form that carries it is
    only accepted while callbacks are enabled)."""
    allow = AllowList.parse(state.settings.callback_allow_private_networks)
    try:
        await run_in_threadpool(check_url, url, allow)
    except UnsafeCallbackUrl as exc:
        raise _callback_error("callback_url_refused", str(exc), url) from None


_REPORT_LIST = TypeAdapter(list[ReportIn])


def dump_reports(reports: list[ReportIn]) -> list[dict[str, Any]]:
    """The validated reports as plain dicts, in one call (a ``model_dump`` per report cost more than parsing)."""
    dumped: list[dict[str, Any]] = _REPORT_LIST.dump_python(reports)
    return dumped


def _state(request: Request) -> AppState:
    """The app's state, read directly: the hottest routes skip the ``State`` dependency (measurable per request)."""
    state: AppState = request.app.state.rs
    return state


async def _submit(
    request: Request,
    state: AppState,
    principal: Principal,
    reports: list[ReportIn],
    idempotency_key: str | None,
    callback_url: str | None = None,
) -> Any:
    answer = await submit_answer(state, principal, dump_reports(reports), idempotency_key, callback_url)
    if answer.task_id is not None:
        request.state.task_id = answer.task_id
    return answer.response()


@dataclass(slots=True)
class Answer:
    """A hot route's answer, rendered by the route (``response()``) or by the fast path (:mod:`api.fastpath`)."""

    status: int
    body: Any
    headers: dict[str, str] | None = None
    task_id: str | None = None
    """For the access log."""

    def response(self) -> Response:
        return _json(self.body, status_code=self.status, headers=self.headers)


async def submit_answer(
    state: AppState,
    principal: Principal,
    payload: list[dict[str, Any]],
    idempotency_key: str | None,
    callback_url: str | None = None,
) -> Answer:
    """Store the validated reports as one durable job and queue it: 202 once committed (409 for a reused
    Idempotency-Key with another body, 503 while too many jobs are pending)."""
    runner = state.runner
    if not runner.has_capacity():
        return Answer(
            503,
            {"detail": f"too many pending jobs ({runner.pending()}); retry later"},
            {"Retry-After": str(state.settings.retry_after_s)},
        )
    work = reports_service.submission(
        reports=payload,
        owner=principal.tenant,
        idempotency_key=idempotency_key,
        ttl_s=state.settings.idempotency_ttl_s,
        callback_url=callback_url,
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
        return Answer(409, {"detail": "this Idempotency-Key was already used with a different request body"})
    except BaseException:
        runner.release()
        raise
    if submitted.created:
        runner.submit(
            submitted.job_id,
            len(payload),
            owner=principal.tenant,
            features=reports_service.handover(submitted, payload) if runner.uses_features else None,
        )
    else:
        runner.release()
    return Answer(
        202,
        {"task_id": submitted.job_id, "status": "PENDING"},
        {"Location": f"/task/{submitted.job_id}"},
        submitted.job_id,
    )


def _json(body: Any, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer rendered by orjson (same body as ``JSONResponse``, without a pydantic model in between)."""
    return Response(orjson.dumps(body), status_code=status_code, headers=headers, media_type="application/json")


async def _lookup(state: AppState, owner: str, task_id: str) -> reports_service.TaskView | None:
    """The task from this process's cache, else from the store (a finished one is then cached: it never changes)."""
    view = state.tasks.get(task_id, owner=owner)
    if view is not None:
        return view
    view = await run_in_threadpool(reports_service.get_task, db=state.db, task_id=task_id, owner=owner)
    if view is not None and view.done:
        state.tasks.remember(view, owner=owner)
    return view


async def _wait_for_task(state: AppState, owner: str, task_id: str, wait: float) -> reports_service.TaskView | None:
    """Long-poll: read once, then sleep until the job's finish is announced (no polling while notifications are
    reliable; a re-read once a second while they are not).

    A job this process accepted moments ago (a valid pending hint) is almost always still pending, and its finish
    will be announced here: the first read is skipped and the first wait is capped at the hint's validity. After
    that wake-up or timeout the task is read for real, so the caller never sees the hint itself."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with state.notifier.subscribe(task_id) as finished:  # subscribe before reading: no finish is missed
        hint_s = _pending_hint_s(state, owner, task_id)
        if hint_s is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(hint_s, deadline - loop.time())):
                    await finished.wait()
            finished.clear()
        view = await _lookup(state, owner, task_id)
        while view is not None and not view.done:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            timeout = remaining if state.notifier.reliable else min(remaining, 1.0)
            try:
                async with asyncio.timeout(timeout):  # no extra task per wait, unlike wait_for
                    await finished.wait()
            except TimeoutError:
                if state.notifier.reliable and loop.time() >= deadline:
                    break
            finished.clear()
            view = await _lookup(state, owner, task_id)
    return view


def _pending_hint_s(state: AppState, owner: str, task_id: str) -> float | None:
    """How long the job's pending hint stays valid; None when the first read must not be skipped (no hint, another
    owner's, recorded before the subscription was last re-established, expired, or the task is already cached)."""
    subscriber = state.subscriber
    epoch = None if subscriber is None else subscriber.live_epoch()
    if epoch is None:
        return None
    hint_s = state.tasks.pending_hint(task_id, owner=owner, epoch=epoch)
    if hint_s is None or state.tasks.get(task_id, owner=owner) is not None:
        return None
    return hint_s


async def _score(
    request: Request, state: AppState, principal: Principal, reports: list[ReportIn], persist: bool
) -> Any:
    answer = await score_answer(state, principal, dump_reports(reports), persist, datetime.now(UTC))
    if answer.task_id is not None:
        request.state.task_id = answer.task_id
    return answer.response()


async def score_answer(
    state: AppState, principal: Principal, payload: list[dict[str, Any]], persist: bool, received_at: datetime
) -> Answer:
    """Score in this request through the process's micro-batcher; with ``persist`` the job is committed first."""
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
    return Answer(
        200,
        {
            "score": scored.scores,
            "model": {"name": scored.model.name, "version": scored.model.version},
            "task_id": task_id,
        },
        task_id=task_id,
    )


def _not_found(task_id: str) -> JSONResponse:
    return JSONResponse({"detail": f"task {task_id} not found"}, status_code=404)


async def task_view(state: AppState, owner: str, task_id: str, wait: float) -> reports_service.TaskView | None:
    """The task (None: unknown, or another tenant's), long-polling up to ``wait`` seconds (capped) for it to end."""
    wait = min(wait, state.settings.long_poll_max_s)
    if wait > 0:
        return await _wait_for_task(state, owner, task_id, wait)
    return await _lookup(state, owner, task_id)


def task_answer(task_id: str, view: reports_service.TaskView | None) -> Answer:
    """``GET /task/{id}`` without reasons: 404, 202 while pending, or the result (built directly: the hottest
    answer; a task with a callback also shows its delivery state)."""
    if view is None:
        return Answer(404, {"detail": f"task {task_id} not found"}, task_id=task_id)
    if not view.done:
        status = "STARTED" if view.status == "STARTED" else "PENDING"
        return Answer(202, {"task_id": task_id, "status": status}, task_id=task_id)
    return Answer(200, result_body(view) if view.callback is None else task_result_json(view), task_id=task_id)


async def _read_task(
    request: Request, state: AppState, principal: Principal, task_id: str, wait: float, explain: bool = False
) -> Any:
    try:
        uuid.UUID(task_id)
    except ValueError:
        return _not_found(task_id)
    request.state.task_id = task_id
    view = await task_view(state, principal.tenant, task_id, wait)
    if not (explain and view is not None and view.status == "SUCCESS" and view.reports):
        return task_answer(task_id, view).response()
    result = task_result(view)
    reasons = await run_in_threadpool(
        moderation_service.task_reasons, db=state.db, explainer=state.explainer, task_id=task_id
    )
    result.reports = [
        ExplainedReportRef(
            id=r.id,
            report_id=r.client_report_id,
            reasons=None if reasons.get(r.id) is None else [Reason.model_validate(x) for x in reasons[r.id]],
        )
        for r in view.reports
    ]
    return JSONResponse(
        result.model_dump(mode="json", exclude={"callback"} if view.callback is None else None), status_code=200
    )
