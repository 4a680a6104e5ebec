"""A report as clients send it. Strict: no coercion of strings to numbers, no unknown fields, no NaN."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reportscore.scoring.features import INT32_MAX

EXAMPLE_REPORTS: list[dict[str, Any]] = [
    {
        "abuse_type": "MSG",
        "report_text_len": 120,
        "profile_rating": 0.45,
        "popularity": 3,
        "lifetime_matches_created": 12,
    },
    {
        "abuse_type": "PRF",
        "report_text_len": 0,
        "profile_rating": 0.91,
        "popularity": 1,
        "lifetime_matches_created": 540,
        "report_id": "rep-2026-000042",
    },
]


class ReportIn(BaseModel):
    """One user-generated abuse report to score."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": EXAMPLE_REPORTS},  # type: ignore[dict-item]
    )

    abuse_type: Literal["MSG", "PRF"] = Field(description="What was reported: a message (MSG) or a profile (PRF).")
    report_text_len: int = Field(ge=0, le=INT32_MAX, description="Length of the reporter's text, in characters.")
    profile_rating: float = Field(allow_inf_nan=False, description="Rating of the reported profile (finite).")
    popularity: int = Field(ge=0, le=5, description="Popularity bucket of the reported profile, 0..5.")
    lifetime_matches_created: int = Field(
        ge=0, le=INT32_MAX, description="Matches the reported profile has created in its lifetime."
    )
    report_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="The client's own id for this report, echoed back in results."
    )


EXAMPLE_CALLBACK_URL = "https://moderation.example.com/hooks/reportscore"


class SubmitBodyBase(BaseModel):
    """The object form of a submission: the reports, and where to POST the result when the task ends (the API
    declares ``SubmitBody`` from it, with the configured bounds on ``reports``)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"reports": EXAMPLE_REPORTS, "callback_url": EXAMPLE_CALLBACK_URL}]},  # type: ignore[dict-item]
    )

    reports: list[ReportIn]
    callback_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        json_schema_extra={"format": "uri"},
        description="http(s) URL that receives the task's result (the body of GET /task/{task_id} when done), "
        "signed with HMAC-SHA256; it must resolve to public addresses. Needs callbacks enabled on the deployment.",
    )
