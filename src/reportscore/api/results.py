"""A finished task as the API shows it: the body of ``GET /task/{id}`` (200) and of its callback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reportscore.api.schemas.tasks import CallbackInfo, ModelInfo, ReportRef, TaskResult, Timings
from reportscore.reports.service import TaskView


def _ms(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else round((b - a).total_seconds() * 1000, 3)


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.isoformat()


def result_body(view: TaskView) -> dict[str, Any]:
    """``TaskResult`` as JSON, built directly (the hottest answer; ``TaskResult`` documents it, and a test checks
    the two agree)."""
    success = view.status == "SUCCESS"
    return {
        "task_id": view.task_id,
        "status": "SUCCESS" if success else "FAILURE",
        "score": [r.score for r in view.reports if r.score is not None] if success and view.reports else None,
        "error": None if success else (view.error or "scoring failed"),
        "model": {"name": view.model_name, "version": view.model_version}
        if view.model_name and view.model_version
        else None,
        "reports": [{"id": r.id, "report_id": r.client_report_id} for r in view.reports] if view.reports else None,
        "n_reports": view.n_reports,
        "attempts": view.attempts,
        "created_at": view.created_at.isoformat(),
        "started_at": _iso(view.started_at),
        "finished_at": _iso(view.finished_at),
        "timings": {
            "queued_ms": _ms(view.created_at, view.started_at),
            "predict_ms": round(view.predict_ms, 3) if view.predict_ms is not None else None,
            "total_ms": _ms(view.created_at, view.finished_at),
        },
    }


def task_result(view: TaskView) -> TaskResult:
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
        callback=None
        if view.callback is None
        else CallbackInfo(
            status=view.callback.status,
            attempts=view.callback.attempts,
            last_attempt_at=view.callback.last_attempt_at,
            last_status_code=view.callback.last_status_code,
            last_error=view.callback.last_error,
            finished_at=view.callback.finished_at,
        ),
    )


def task_result_json(view: TaskView) -> dict[str, Any]:
    """The JSON of ``GET /task/{id}`` for a finished task (``callback`` only when the task has one)."""
    return task_result(view).model_dump(mode="json", exclude={"callback"} if view.callback is None else None)


def callback_body(view: TaskView) -> dict[str, Any]:
    """What a callback POSTs: the same JSON as ``GET /task/{id}`` answers when done, without the ``callback``
    field (whose state changes with every delivery)."""
    return task_result(view).model_dump(mode="json", exclude={"callback"})
