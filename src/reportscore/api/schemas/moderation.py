"""The moderation queue, reasons and feedback bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from reportscore.api.schemas.tasks import REASONS_DESCRIPTION, ModelInfo, Reason, UTCTimestamp

MAX_REPORT_ID = 2**63 - 1
NO_NUL = r"^[^\x00]*$"


class QueueItem(BaseModel):
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
                    "next_cursor": "eyJ2IjoxLCJzIjowLjk3MzEsImkiOjQyMTEsImEiOm51bGx9",
                }
            ]
        }
    )

    items: list[QueueItem]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= (with the same abuse_type) for the next page; null when there is none now."
    )


class FeedbackIn(BaseModel):
    """A moderator's outcome for one report, named by exactly one of ``id`` or ``report_id``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"id": 4211, "outcome": "actioned", "reviewer": "mod-ana"}]},
    )

    id: int | None = Field(default=None, ge=1, le=MAX_REPORT_ID, description="The service's id of the report.")
    report_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=NO_NUL,
        description="Your own id of the report; the most recent report with this id in your tenant.",
    )
    outcome: Literal["actioned", "dismissed"]
    reviewer: str = Field(min_length=1, max_length=128, pattern=NO_NUL, description="Who decided.")
    reviewed_at: AwareDatetime | None = Field(default=None, description="With an offset; default: when recorded.")

    @model_validator(mode="after")
    def _one_id(self) -> FeedbackIn:
        if (self.id is None) == (self.report_id is None):
            raise ValueError("give exactly one of id or report_id")
        return self


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
