"""A report as clients send it. Strict: no coercion of strings to numbers, no unknown fields, no NaN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from reportscore.api.schemas.text import Text
from reportscore.scoring.features import FLOAT32_MAX, INT32_MAX


@dataclass(frozen=True, slots=True)
class JsonInt:
    """A strict integer in ``[ge, le]`` that also accepts a JSON number with a zero fractional part: JSON has one
    number type, so ``5.0`` is the integer 5 (JSON Schema agrees); ``5.5``, strings and booleans are refused.

    Built from pydantic-core validators only (no Python call per value: a body of 1,000 reports holds 3,000 of
    these): an exact integer, or a strict float that converts to an integer without loss; then the bounds, whose
    errors (``greater_than_equal``, ``less_than_equal``) say which bound was crossed."""

    ge: int
    le: int

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        number = core_schema.union_schema(
            [
                core_schema.int_schema(strict=True),
                core_schema.chain_schema([core_schema.float_schema(strict=True), core_schema.int_schema(strict=False)]),
            ],
            custom_error_type="int_type",
        )
        return core_schema.chain_schema([number, core_schema.int_schema(strict=True, ge=self.ge, le=self.le)])

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "integer", "minimum": self.ge, "maximum": self.le}


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
    report_text_len: Annotated[int, JsonInt(0, INT32_MAX)] = Field(
        description="Length of the reporter's text, in characters."
    )
    profile_rating: float = Field(
        allow_inf_nan=False,
        ge=-FLOAT32_MAX,
        le=FLOAT32_MAX,
        description="Rating of the reported profile: finite, and within the 32-bit float range the models take.",
    )
    popularity: Annotated[int, JsonInt(0, 5)] = Field(description="Popularity bucket of the reported profile, 0..5.")
    lifetime_matches_created: Annotated[int, JsonInt(0, INT32_MAX)] = Field(
        description="Matches the reported profile has created in its lifetime."
    )
    report_id: Annotated[Text, Field(min_length=1, max_length=128)] | None = Field(
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
    callback_url: Annotated[Text, Field(min_length=1, max_length=2048)] | None = Field(
        default=None,
        json_schema_extra={"format": "uri"},
        description="http(s) URL that receives the task's result (the body of GET /task/{task_id} when done), "
        "signed with HMAC-SHA256; it must resolve to public addresses. Needs callbacks enabled on the deployment.",
    )
