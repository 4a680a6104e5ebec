"""The moderation queue, reasons and feedback bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from reportscore.api.schemas.tasks import REASONS_DESCRIPTION, ModelInfo, Reason, UTCTimestamp
from reportscore.api.schemas.text import Text

MAX_REPORT_ID = 2**53 - 1
"""The largest report id accepted: every integer up to it is exact as a JSON number in any client (JavaScript's
Number.MAX_SAFE_INTEGER), also when sent as ``42.0``; 2**63 - 1 is not (as a double it rounds up, past BIGINT)."""


def _text_only(value: Any) -> Any:
    """JSON has no date-time type, only its ISO 8601 text (the schema's ``format: date-time``): a number is refused,
    not read as a Unix time."""
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time with an offset, as a string")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_text_only)]


class ReportOut(BaseModel):
    """A stored, scored report as the review queue shows it (``ReportIn`` is the report as clients send it)."""

    id: int = Field(description="The service's id of the report (use it for feedback).")
    report_id: str | None = Field(description="The client's own id, if it sent one.")
    task_id: str
    abuse_type: Literal["MSG", "PRF"]
    score: float
    model: ModelInfo | None = Field(description="The model name and version that scored this report.")
    submitted_at: UTCTimestamp
    scored_at: UTCTimestamp | None
    reasons: list[Reason] | None = Field(description=REASONS_DESCRIPTION)


class QueuePage(BaseModel):
    """Unreviewed, scored reports of your tenant, highest score first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": 4211,
                            "report_id": "rep-2026-000042",
                            "task_id": "5f0c8a1e-3f5e-4d36-9a4b-0f3a3d7f2c11",
                            "abuse_type": "MSG",
                            "score": 0.9731,
                            "model": {"name": "reportscore-reference", "version": "1.0.0"},
                            "submitted_at": "2026-11-27T08:00:00.000000+00:00",
                            "scored_at": "2026-11-27T08:00:00.009000+00:00",
                            "reasons": [
                                {"feature": "profile_rating", "contribution": 1.96},
                                {"feature": "report_text_len", "contribution": 0.89},
                                {"feature": "popularity", "contribution": 0.47},
                            ],
                        }
                    ],
                    "next_cursor": "0.9731_4211",
                }
            ]
        }
    )

    items: list[ReportOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= (with the same abuse_type) for the next page; null when there is none now. "
        "`<score>_<id>`: the last item's score and id (a position in the queue, not tied to the filter).",
        examples=["0.9731_4211"],
    )


class _FeedbackBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["actioned", "dismissed"]
    reviewer: Text = Field(min_length=1, max_length=128, description="Who decided.")
    reviewed_at: IsoDatetime | None = Field(default=None, description="With an offset; default: when recorded.")


class FeedbackById(_FeedbackBase):
    """A moderator's outcome for one report, named by the service's ``id`` (then no ``report_id``)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": 4211, "outcome": "actioned", "reviewer": "mod-ana"}]},
    )

    id: int = Field(ge=1, le=MAX_REPORT_ID, description="The service's id of the report.")


class FeedbackByReportId(_FeedbackBase):
    """A moderator's outcome for one report, named by your own ``report_id`` (then no ``id``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"report_id": "rep-2026-000042", "outcome": "dismissed", "reviewer": "mod-ben"}]
        },
    )

    report_id: Text = Field(
        min_length=1,
        max_length=128,
        description="Your own id of the report; the most recent report with this id in your tenant.",
    )


BY_ID = "by:id"
BY_REPORT_ID = "by:report_id"
"""Union tags (never a field name: they hold a colon), left out of error locations by the route."""

ONE_ID_MESSAGE = "give exactly one of id or report_id"


def _feedback_target(value: Any) -> str | None:
    """Which form an outcome has; None (the error ``one_id``) when it has both ids or neither."""
    if isinstance(value, FeedbackById):
        return BY_ID
    if isinstance(value, FeedbackByReportId):
        return BY_REPORT_ID
    if not isinstance(value, dict):
        return BY_ID  # not an object: that form's error says so
    if ("id" in value) == ("report_id" in value):
        return None
    return BY_ID if "id" in value else BY_REPORT_ID


FeedbackIn = Annotated[
    Annotated[FeedbackById, Tag(BY_ID)] | Annotated[FeedbackByReportId, Tag(BY_REPORT_ID)],
    Discriminator(_feedback_target, custom_error_type="one_id", custom_error_message=ONE_ID_MESSAGE),
]
"""A moderator's outcome for one report, named by exactly one of ``id`` or ``report_id``."""


EXAMPLE_FEEDBACK = [
    {"id": 4211, "outcome": "actioned", "reviewer": "mod-ana"},
    {
        "report_id": "rep-2026-000042",
        "outcome": "dismissed",
        "reviewer": "mod-ben",
        "reviewed_at": "2026-11-27T09:15:00+00:00",
    },
]


class FeedbackItemResult(BaseModel):
    status: Literal["recorded", "unchanged", "not_found"] = Field(
        description="recorded: now the report's outcome (a first review, or a correction: latest wins, history "
        "kept); unchanged: it already was; not_found: no such report in your tenant."
    )
    id: int | None
    report_id: str | None
    outcome: Literal["actioned", "dismissed"]
    previous_outcome: Literal["actioned", "dismissed"] | None = Field(
        default=None, description="For a correction: the outcome it replaced."
    )


class FeedbackResponse(BaseModel):
    """One result per outcome sent, in the same order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {"status": "recorded", "id": 4211, "report_id": None, "outcome": "actioned"},
                        {
                            "status": "unchanged",
                            "id": 4212,
                            "report_id": "rep-2026-000042",
                            "outcome": "dismissed",
                        },
                    ]
                }
            ]
        }
    )

    results: list[FeedbackItemResult]
