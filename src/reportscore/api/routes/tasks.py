"""Submit a batch of reports (``/predict``, alias ``/submit``) and read its task (``/task/{task_id}``)."""

import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BeforeValidator, Discriminator, Field, Tag, TypeAdapter
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import Principal, requires
from reportscore.api.deps import AppState, require_json
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
from reportscore.jobs import views as task_views
from reportscore.jobs.service import Answer, task_answer
from reportscore.moderation import service as moderation_service
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
    answer = await state.jobs.submit(
        owner=principal.tenant,
        reports=dump_reports(reports),
        idempotency_key=idempotency_key,
        callback_url=callback_url,
    )
    return respond(request, answer)


def respond(request: Request, answer: Answer) -> Response:
    """The jobs service's answer as this route's response (its task id noted for the access log)."""
    if answer.task_id is not None:
        request.state.task_id = answer.task_id
    return _json(answer.body, status_code=answer.status, headers=answer.headers)


def _json(body: Any, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer rendered by orjson (same body as ``JSONResponse``, without a pydantic model in between)."""
    return Response(orjson.dumps(body), status_code=status_code, headers=headers, media_type="application/json")


async def _score(
    request: Request, state: AppState, principal: Principal, reports: list[ReportIn], persist: bool
) -> Any:
    answer = await state.jobs.score(
        owner=principal.tenant, reports=dump_reports(reports), persist=persist, received_at=datetime.now(UTC)
    )
    return respond(request, answer)


def _not_found(task_id: str) -> JSONResponse:
    return JSONResponse({"detail": f"task {task_id} not found"}, status_code=404)


async def _read_task(
    request: Request, state: AppState, principal: Principal, task_id: str, wait: float, explain: bool = False
) -> Any:
    try:
        uuid.UUID(task_id)
    except ValueError:
        return _not_found(task_id)
    request.state.task_id = task_id
    view = await state.jobs.read(owner=principal.tenant, task_id=task_id, wait=wait)
    if not (explain and view is not None and view.status == "SUCCESS" and view.reports):
        return respond(request, task_answer(task_id, view))
    reasons = await run_in_threadpool(
        moderation_service.task_reasons, db=state.db, explainer=state.explainer, task_id=task_id
    )
    body = task_views.task_body(view)
    body["reports"] = [
        ExplainedReportRef(
            id=r.id,
            report_id=r.client_report_id,
            reasons=None if reasons.get(r.id) is None else [Reason.model_validate(x) for x in reasons[r.id]],
        ).model_dump(mode="json")
        for r in view.reports
    ]
    return JSONResponse(body, status_code=200)
