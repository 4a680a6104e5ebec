"""Task (job) responses, compatible with the proof of concept: ``task_id``, ``status`` and ``score``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

UTCTimestamp = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]


class TaskAccepted(BaseModel):
    """The job is stored durably and queued."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"task_id": "5f0c8a1e-3f5e-4d36-9a4b-0f3a3d7f2c11", "status": "PENDING"}]}
    )

    task_id: str
    status: Literal["PENDING"] = "PENDING"


class TaskPending(BaseModel):
    """Not done yet; poll again (or pass ``?wait=`` to long-poll)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"task_id": "5f0c8a1e-3f5e-4d36-9a4b-0f3a3d7f2c11", "status": "STARTED"}]}
    )

    task_id: str
    status: Literal["PENDING", "STARTED"]


class ModelInfo(BaseModel):
    name: str
    version: str


class Timings(BaseModel):
    queued_ms: float | None = Field(description="From acceptance until scoring started.")
    predict_ms: float | None = Field(description="Model call for the micro-batch this job was scored in.")
    total_ms: float | None = Field(description="From acceptance until the result was committed.")


class ReportRef(BaseModel):
    id: int = Field(description="The service's id of this report (use it for feedback).")
    report_id: str | None = Field(description="The client's own id, if it sent one.")


class Reason(BaseModel):
    """One feature's contribution to a report's score, as the scoring model itself computes it."""

    feature: str = Field(description="The feature's name in the model's feature schema.")
    contribution: float = Field(
        description="Signed contribution on the model's margin scale (log-odds for XGBoost): positive pushes the "
        "score up, negative down."
    )


REASONS_DESCRIPTION = (
    "Up to 3 feature contributions with the largest absolute value, largest first (zeros left out), from the model "
    "version that scored the report (XGBoost's own pred_contribs). null when that model gives none (a format "
    "without contributions) or the version cannot be loaded."
)


class ExplainedReportRef(ReportRef):
    """A report of ``GET /task/{id}?explain=true``: its ids and its top reasons."""

    reasons: list[Reason] | None = Field(description=REASONS_DESCRIPTION)


class CallbackInfo(BaseModel):
    """Delivery of this task's callback (only on tasks submitted with a ``callback_url``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "pending",
                    "attempts": 2,
                    "last_attempt_at": "2026-11-27T08:00:04.000000+00:00",
                    "last_status_code": 500,
                    "last_error": "receiver answered HTTP 500",
                    "finished_at": None,
                }
            ]
        }
    )

    status: Literal["pending", "delivered", "failed"] = Field(
        description="pending: not acknowledged yet (retried with backoff); delivered: a 2xx was received; "
        "failed: gave up after the maximum number of attempts."
    )
    attempts: int = Field(description="Deliveries made so far.")
    last_attempt_at: UTCTimestamp | None = None
    last_status_code: int | None = Field(default=None, description="HTTP status of the last answer, if any.")
    last_error: str | None = Field(default=None, description="Why the last delivery did not succeed.")
    finished_at: UTCTimestamp | None = Field(default=None, description="When it was delivered or given up.")


class TaskResult(BaseModel):
    """A finished job: SUCCESS with one score per report in request order, or FAILURE with the reason."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "task_id": "5f0c8a1e-3f5e-4d36-9a4b-0f3a3d7f2c11",
                    "status": "SUCCESS",
                    "score": [0.8123, 0.0412],
                    "model": {"name": "reportscore-reference", "version": "1.0.0"},
                    "reports": [{"id": 1, "report_id": None}, {"id": 2, "report_id": "rep-2026-000042"}],
                    "created_at": "2026-11-27T08:00:00.000000+00:00",
                    "started_at": "2026-11-27T08:00:00.004000+00:00",
                    "finished_at": "2026-11-27T08:00:00.009000+00:00",
                    "timings": {"queued_ms": 4.0, "predict_ms": 0.6, "total_ms": 9.0},
                },
                {
                    "task_id": "0b7e0c1a-6f62-4a34-8b5e-52d3b1a1c9aa",
                    "status": "FAILURE",
                    "error": "scoring failed",
                },
            ]
        }
    )

    task_id: str
    status: Literal["SUCCESS", "FAILURE"]
    score: list[float] | None = Field(default=None, description="One score in 0..1 per report, in request order.")
    error: str | None = None
    model: ModelInfo | None = None
    reports: list[ExplainedReportRef] | list[ReportRef] | None = Field(
        default=None, description="Per-report ids in request order (with their reasons when ?explain=true)."
    )
    n_reports: int
    attempts: int
    created_at: UTCTimestamp
    started_at: UTCTimestamp | None = None
    finished_at: UTCTimestamp | None = None
    timings: Timings | None = None
    callback: CallbackInfo | None = Field(
        default=None, description="Only for tasks submitted with a callback_url: the state of its delivery."
    )


class ScoreResponse(BaseModel):
    """Scores computed in the request, one per report in request order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "score": [0.8123, 0.0412],
                    "model": {"name": "reportscore-reference", "version": "1.0.0"},
                    "task_id": "5f0c8a1e-3f5e-4d36-9a4b-0f3a3d7f2c11",
                }
            ]
        }
    )

    score: list[float]
    model: ModelInfo
    task_id: str | None = Field(
        default=None, description="The stored job (readable at /task/{task_id}); null with persist=false."
    )


class ErrorBody(BaseModel):
    """An error with a human-readable reason."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "task not found"}]})

    detail: str


class ValidationErrorItem(BaseModel):
    """One rejected field: where (``loc``: ``body``, the report's index, the field), why, and what was sent."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrorBody(BaseModel):
    """FastAPI's standard validation-error shape: one entry per rejected field."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "type": "less_than_equal",
                            "loc": ["body", 1, "popularity"],
                            "msg": "Input should be less than or equal to 5",
                            "input": 7,
                            "ctx": {"le": 5},
                        }
                    ]
                }
            ]
        }
    )

    detail: list[ValidationErrorItem]


class Heartbeat(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"message": "Service Ok"}]})

    message: str


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "checks": {
                        "database": "ok",
                        "model": "reportscore-reference 1.0.0",
                        "broker": "not used",
                    },
                }
            ]
        }
    )

    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
