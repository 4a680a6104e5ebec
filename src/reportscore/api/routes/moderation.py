"""The moderators' API: the review queue (``GET /reports/queue``) and their outcomes (``POST /feedback``)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import Principal, requires
from reportscore.api.deps import State
from reportscore.api.schemas.moderation import (
    BY_ID,
    BY_REPORT_ID,
    EXAMPLE_FEEDBACK,
    FeedbackById,
    FeedbackIn,
    FeedbackItemResult,
    FeedbackResponse,
    QueuePage,
    ReportOut,
)
from reportscore.api.schemas.tasks import ModelInfo, Reason
from reportscore.api.unions import untagged_union_route
from reportscore.moderation import service as moderation_service

router = APIRouter(tags=["moderation"], route_class=untagged_union_route(BY_ID, BY_REPORT_ID))

MAX_FEEDBACK_ITEMS = 1000


@router.get(
    "/reports/queue",
    summary="The review queue: unreviewed scored reports, highest score first",
    response_model=QueuePage,
    responses={422: {"description": "limit outside 1..500, or a cursor not of the form <score>_<id>."}},
)
async def review_queue(
    state: State,
    principal: Annotated[Principal, requires("read")],
    limit: Annotated[int, Query(ge=1, le=500, description="Reports per page (1..500).")] = 50,
    abuse_type: Annotated[Literal["MSG", "PRF"] | None, Query(description="Only reports of this type.")] = None,
    cursor: Annotated[
        str | None,
        Query(
            pattern=moderation_service.CURSOR_PATTERN,
            description="Start after this position: the next_cursor of the previous page, `<score>_<id>` (the "
            "last item's score and id). Any such position is valid; it does not hold the filter (page with the "
            "same abuse_type to see that filter's queue).",
            examples=["0.9019927382469177_2"],
        ),
    ] = None,
) -> Any:
    """Reports of your tenant whose job succeeded and that have no outcome yet, ordered by (score descending,
    id ascending) across model versions (scores of different versions are mixed in one order). Keyset-paginated:
    reports that arrive while you page never make you miss or repeat one; a report leaves once an outcome is
    recorded for it."""
    try:
        page = await run_in_threadpool(
            moderation_service.queue_page,
            db=state.db,
            explainer=state.explainer,
            owner=principal.tenant,
            limit=limit,
            abuse_type=abuse_type,
            cursor=cursor,
        )
    except moderation_service.InvalidCursor as exc:
        raise RequestValidationError(
            [{"type": "invalid_cursor", "loc": ("query", "cursor"), "msg": str(exc), "input": cursor}]
        ) from None
    items = [
        ReportOut(
            id=row.id,
            report_id=row.client_report_id,
            task_id=row.job_id,
            abuse_type=row.features["abuse_type"],
            score=row.score,
            model=ModelInfo(name=row.model_name, version=row.model_version)
            if row.model_name and row.model_version
            else None,
            submitted_at=row.submitted_at,
            scored_at=row.scored_at,
            reasons=reasons_of(page.reasons.get(row.id)),
        )
        for row in page.items
    ]
    return QueuePage(items=items, next_cursor=page.next_cursor).model_dump(mode="json")


def reasons_of(stored: list[dict[str, Any]] | None) -> list[Reason] | None:
    return None if stored is None else [Reason.model_validate(r) for r in stored]


@router.post(
    "/feedback",
    summary="Record moderators' outcomes (actioned / dismissed)",
    response_model=FeedbackResponse,
    responses={
        422: {
            "description": "Invalid outcomes (standard FastAPI validation errors; `one_id` for an outcome with both "
            "or neither of id and report_id); nothing is recorded."
        }
    },
)
async def feedback(
    state: State,
    principal: Annotated[Principal, requires("feedback")],
    outcomes: Annotated[
        list[FeedbackIn],
        Body(
            min_length=1,
            max_length=MAX_FEEDBACK_ITEMS,
            description=f"1 to {MAX_FEEDBACK_ITEMS} outcomes, each naming one report by id or report_id.",
            examples=[EXAMPLE_FEEDBACK],
        ),
    ],
) -> Any:
    """All outcomes are recorded in one transaction, with the model version that scored each report. Idempotent:
    resending an outcome a report already has answers ``unchanged``. A different outcome for a reviewed report is
    a correction: ``recorded`` with ``previous_outcome``; the latest wins and the history keeps both."""
    items = [
        moderation_service.FeedbackItem(
            id=o.id if isinstance(o, FeedbackById) else None,
            report_id=None if isinstance(o, FeedbackById) else o.report_id,
            outcome=o.outcome,
            reviewer=o.reviewer,
            reviewed_at=o.reviewed_at,
        )
        for o in outcomes
    ]
    results = await run_in_threadpool(
        moderation_service.record_feedback, db=state.db, owner=principal.tenant, items=items
    )
    return FeedbackResponse(
        results=[
            FeedbackItemResult(
                status=r.status,
                id=r.id,
                report_id=r.report_id,
                outcome=r.outcome,
                previous_outcome=r.previous_outcome,
            )
            for r in results
        ]
    ).model_dump(mode="json")
