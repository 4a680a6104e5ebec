"""A scoring attempt's outcome: SUCCESS with every report's score (first committed result wins), or FAILURE."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, tuple_, update
from sqlalchemy.orm import Session

from reportscore.storage.models import Job, JobStatus
from reportscore.storage.models.jobs import TERMINAL_STATUSES
from reportscore.storage.repositories.jobs.writer import NewScore, writer_of

_JOBS = cast(Table, Job.__table__)


@dataclass(frozen=True)
class JobResult:
    job_id: str
    report_ids: Sequence[int]
    scores: Sequence[float]
    model_name: str
    model_version: str
    predict_ms: float
    attempt: int
    """The claim's attempt number (``jobs.attempts`` as the claim set it): the write's fencing token."""


# Fenced by the attempt: a job reclaimed by a later attempt (this one's lease ran out) is not this result's to write.
_SAVE_SUCCESS = (
    update(_JOBS)
    .where(
        tuple_(_JOBS.c.id, _JOBS.c.attempts).in_(bindparam("b_claims", expanding=True)),
        _JOBS.c.status.not_in(TERMINAL_STATUSES),
    )
    .values(
        status=JobStatus.SUCCESS,
        finished_at=bindparam("b_finished_at"),
        model_name=bindparam("b_model_name"),
        model_version=bindparam("b_model_version"),
        predict_ms=bindparam("b_predict_ms"),
        error=None,
        leased_until=None,
    )
    .returning(_JOBS.c.id, _JOBS.c.owner)
)


def save_results(session: Session, *, results: Iterable[JobResult], finished_at: datetime) -> list[str]:
    """Write SUCCESS and scores for each job still unfinished; returns the ids written.

    The job row's status guard makes the first committed result win: a job finished meanwhile (by a redelivery
    or another worker) is skipped and gets no scores. The write is also fenced by the claim's attempt number: a
    worker whose lease ran out and whose job was claimed again (by a later attempt) writes nothing, even when it
    finishes first, so only the attempt holding the job can write its result.
    One UPDATE per model call (usually one per batch) marks the jobs; every report's score is then inserted into
    ``report_scores`` in one statement (the report rows themselves are not rewritten).
    """
    by_call: dict[tuple[str, str, float], list[JobResult]] = {}
    for res in results:
        by_call.setdefault((res.model_name, res.model_version, res.predict_ms), []).append(res)
    conn = session.connection()
    written: list[str] = []
    scores: list[NewScore] = []
    for (model_name, model_version, predict_ms), group in by_call.items():
        done: dict[str, str] = {
            job_id: owner
            for job_id, owner in conn.execute(
                _SAVE_SUCCESS,
                {
                    "b_claims": [(r.job_id, r.attempt) for r in group],
                    "b_finished_at": finished_at,
                    "b_model_name": model_name,
                    "b_model_version": model_version,
                    "b_predict_ms": predict_ms,
                },
            )
        }
        for res in group:
            owner = done.get(res.job_id)
            if owner is not None:
                written.append(res.job_id)
                scores.extend(
                    NewScore(report_id=rid, owner=owner, score=float(score), model_version=model_version)
                    for score, rid in zip(res.scores, res.report_ids, strict=True)
                )
    if scores:
        writer_of(session).insert_scores(session, scores=scores, scored_at=finished_at)
    return written


def save_failure(session: Session, *, job_id: str, attempt: int, error: str, finished_at: datetime) -> bool:
    """Mark an unfinished job FAILURE with its reason; False when it had already finished or a later attempt
    holds it (fenced by the attempt number like ``save_results``)."""
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts == attempt, Job.status.not_in(TERMINAL_STATUSES))
        .values(status=JobStatus.FAILURE, finished_at=finished_at, error=error[:2000], leased_until=None)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]
