"""A task as everyone sees it: ONE view (:class:`TaskView`), read from the store here, and ONE encoder
(:func:`task_body`) used by ``GET /task/{id}``, its long-poll, the fast path, callbacks and the task cache; the
finish announcements carry the same view in :func:`to_wire` / :func:`from_wire` form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reportscore.storage.db import Database
from reportscore.storage.models import JobStatus
from reportscore.storage.repositories import callbacks as callbacks_repo
from reportscore.storage.repositories import jobs as jobs_repo
from reportscore.storage.repositories.jobs import ScoredReport

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CallbackView:
    """The delivery of a finished job's callback."""

    status: str
    attempts: int
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class TaskView:
    """A job as the API shows it."""

    task_id: str
    status: JobStatus
    n_reports: int
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model_name: str | None
    model_version: str | None
    predict_ms: float | None
    error: str | None
    reports: list[jobs_repo.ScoredReport] | None
    callback: CallbackView | None = None

    @property
    def done(self) -> bool:
        return self.status in (JobStatus.SUCCESS, JobStatus.FAILURE)


def pending_view(task_id: str, *, status: JobStatus, n_reports: int) -> TaskView:
    """A task this process accepted and has not seen finish (only its status and size are known here)."""
    return TaskView(
        task_id=task_id,
        status=status,
        n_reports=n_reports,
        attempts=0,
        created_at=_EPOCH,  # not shown for an unfinished task
        started_at=None,
        finished_at=None,
        model_name=None,
        model_version=None,
        predict_ms=None,
        error=None,
        reports=None,
    )


def get_task(*, db: Database, task_id: str, owner: str) -> TaskView | None:
    """The job and, when it succeeded, its reports' scores in request order; None for an unknown id or another
    owner's job (the caller cannot tell the two apart)."""
    with db.read_connection() as conn:
        job = jobs_repo.get_job_row(conn, job_id=task_id, owner=owner)
        if job is None:
            return None
        reports = jobs_repo.get_job_reports(conn, task_id) if job.status == JobStatus.SUCCESS else None
    callback = None
    if job.callback_url is not None:  # only tasks that asked for a callback pay for this read
        with db.read() as session:
            delivery = callbacks_repo.get_delivery(session, task_id)
        if delivery is not None:
            callback = CallbackView(
                status=delivery.status.value,
                attempts=delivery.attempts,
                last_attempt_at=delivery.last_attempt_at,
                last_status_code=delivery.last_status_code,
                last_error=delivery.last_error,
                finished_at=delivery.finished_at,
            )
    return TaskView(
        task_id=job.id,
        status=job.status,
        n_reports=job.n_reports,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        model_name=job.model_name,
        model_version=job.model_version,
        predict_ms=job.predict_ms,
        error=job.error,
        reports=reports,
        callback=callback,
    )


def get_task_for_callback(*, db: Database, task_id: str) -> TaskView | None:
    """The job as its owner would read it, for the callback dispatcher (which acts for the owner)."""
    with db.read() as session:
        job = jobs_repo.get_job(session, task_id)
        owner = None if job is None else job.owner
    return None if owner is None else get_task(db=db, task_id=task_id, owner=owner)


def _ms(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else round((b - a).total_seconds() * 1000, 3)


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.isoformat()


def pending_body(view: TaskView) -> dict[str, Any]:
    """The body of ``GET /task/{id}`` (202) while the task is not finished."""
    return {"task_id": view.task_id, "status": "STARTED" if view.status == JobStatus.STARTED else "PENDING"}


def task_body(view: TaskView, *, with_callback: bool = True) -> dict[str, Any]:
    """A finished task as JSON (``TaskResult`` documents it): the body of ``GET /task/{id}`` (200), with the
    ``callback`` delivery state only for a task that has one and only when ``with_callback`` (a callback's own
    body leaves it out: it changes with every delivery)."""
    success = view.status == JobStatus.SUCCESS
    body: dict[str, Any] = {
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
    callback = view.callback
    if with_callback and callback is not None:
        body["callback"] = {
            "status": callback.status,
            "attempts": callback.attempts,
            "last_attempt_at": _iso(callback.last_attempt_at),
            "last_status_code": callback.last_status_code,
            "last_error": callback.last_error,
            "finished_at": _iso(callback.finished_at),
        }
    return body


def to_wire(view: TaskView, owner: str) -> dict[str, Any]:
    """The view as a finish announcement carries it to other processes (orjson encodes the datetimes)."""
    return {
        "owner": owner,
        "status": view.status.value,
        "n_reports": view.n_reports,
        "attempts": view.attempts,
        "created_at": view.created_at,
        "started_at": view.started_at,
        "finished_at": view.finished_at,
        "model_name": view.model_name,
        "model_version": view.model_version,
        "predict_ms": view.predict_ms,
        "error": view.error,
        "reports": None if view.reports is None else [(r.id, r.client_report_id, r.score) for r in view.reports],
    }


def from_wire(task_id: str, wire: dict[str, Any]) -> tuple[str, TaskView]:
    """(owner, view) of a task decoded from :func:`to_wire`'s form (after a JSON round trip)."""
    return wire["owner"], TaskView(
        task_id=task_id,
        status=JobStatus(wire["status"]),
        n_reports=wire["n_reports"],
        attempts=wire["attempts"],
        created_at=datetime.fromisoformat(wire["created_at"]),
        started_at=_dt(wire["started_at"]),
        finished_at=_dt(wire["finished_at"]),
        model_name=wire["model_name"],
        model_version=wire["model_version"],
        predict_ms=wire["predict_ms"],
        error=wire["error"],
        reports=None
        if wire["reports"] is None
        else [ScoredReport(id=i, client_report_id=c, score=s) for i, c, s in wire["reports"]],
    )


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
