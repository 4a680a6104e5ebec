"""Shared by the retention tests on SQLite and PostgreSQL: a store with old and new jobs, labelled or not, with
every per-report row, and a checker that a purge left exactly what it should."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from reportscore.jobs import submission as jobs_submission
from reportscore.moderation.service import FeedbackItem, record_feedback
from reportscore.scoring.service import score_jobs
from reportscore.storage.db import Database
from reportscore.storage.models import (
    CallbackDelivery,
    CallbackStatus,
    Job,
    Report,
    ReportFeedback,
    ReportReasons,
    ReportScore,
)
from tests.fakes import fake_serving_model

OWNER = "t"


def report(i: int = 0) -> dict[str, Any]:
    return {
        "abuse_type": "MSG" if i % 2 else "PRF",
        "report_text_len": 10 + i,
        "profile_rating": 5.5,
        "popularity": i % 6,
        "lifetime_matches_created": 7,
    }


def scored_job(db: Database, *, created_at: datetime, n_reports: int = 3, key: str | None = None) -> str:
    """A finished job created at ``created_at`` (as ``POST /score`` stores one)."""
    work = jobs_submission.scored_submission(
        reports=[report(i) for i in range(n_reports)],
        scores=[0.5] * n_reports,
        owner=OWNER,
        model_name="fake",
        model_version="fake-1",
        predict_ms=1.0,
        received_at=created_at,
    )
    with db.write() as session:
        job_id = work(session)
        if key is not None:
            session.get(Job, job_id).idempotency_key = key  # type: ignore[union-attr]
    return job_id


def scored_jobs(db: Database, *, created_at: datetime, count: int, n_reports: int) -> list[str]:
    """``count`` finished jobs created at ``created_at``, in one transaction."""
    works = [
        jobs_submission.scored_submission(
            reports=[report(i) for i in range(n_reports)],
            scores=[0.5] * n_reports,
            owner=OWNER,
            model_name="fake",
            model_version="fake-1",
            predict_ms=1.0,
            received_at=created_at,
        )
        for _ in range(count)
    ]
    with db.write() as session:
        return [work(session) for work in works]


def report_ids(db: Database, job_id: str) -> list[int]:
    with db.read() as s:
        return list(s.scalars(select(Report.id).where(Report.job_id == job_id).order_by(Report.position)))


def label(db: Database, job_id: str) -> None:
    rid = report_ids(db, job_id)[0]
    results = record_feedback(db=db, owner=OWNER, items=[FeedbackItem(outcome="actioned", reviewer="r", id=rid)])
    assert results[0].status == "recorded"


def add_reasons_and_callback(db: Database, job_id: str, *, delivered_at: datetime | None) -> None:
    now = datetime.now(UTC)
    with db.write() as s:
        s.add(
            ReportReasons(
                report_id=report_ids(db, job_id)[0],
                model_name="fake",
                model_version="fake-1",
                reasons=[],
                computed_at=now,
            )
        )
        s.add(
            CallbackDelivery(
                job_id=job_id,
                url="https://example.invalid/cb",
                status=CallbackStatus.DELIVERED if delivered_at else CallbackStatus.PENDING,
                attempts=1 if delivered_at else 0,
                created_at=now,
                next_attempt_at=now,
                finished_at=delivered_at,
            )
        )


def pending_job(db: Database, *, created_at: datetime) -> str:
    job_id = jobs_submission.submit_job(
        db=db, reports=[report()], owner=OWNER, idempotency_key=None, idempotency_ttl_s=60
    ).job_id
    with db.write() as s:
        s.get(Job, job_id).created_at = created_at  # type: ignore[union-attr]
    return job_id


def rows_of(db: Database, job_id: str) -> dict[str, int]:
    """How many rows each table holds for the job."""
    with db.read() as s:
        ids = select(Report.id).where(Report.job_id == job_id).scalar_subquery()

        def count(model: Any, column: Any) -> int:
            return int(s.scalar(select(func.count()).select_from(model).where(column.in_(ids))) or 0)

        return {
            "jobs": int(s.scalar(select(func.count()).select_from(Job).where(Job.id == job_id)) or 0),
            "reports": int(s.scalar(select(func.count()).select_from(Report).where(Report.job_id == job_id)) or 0),
            "report_scores": count(ReportScore, ReportScore.report_id),
            "report_feedback": count(ReportFeedback, ReportFeedback.report_id),
            "report_reasons": count(ReportReasons, ReportReasons.report_id),
            "callback_deliveries": int(
                s.scalar(select(func.count()).select_from(CallbackDelivery).where(CallbackDelivery.job_id == job_id))
                or 0
            ),
        }


def gone(db: Database, job_id: str) -> bool:
    return all(n == 0 for n in rows_of(db, job_id).values())


@dataclass
class LoadResult:
    submitted: int = 0
    scored: int = 0
    errors: list[BaseException] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)


def scoring_load(
    db: Database, stop: threading.Event, result: LoadResult, *, threads: int = 2
) -> list[threading.Thread]:
    """Threads that submit a job and score it, over and over, until ``stop``; every failure is kept."""
    import time

    model = fake_serving_model()

    def run() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                job_id = jobs_submission.submit_job(
                    db=db,
                    reports=[report(i) for i in range(5)],
                    owner=OWNER,
                    idempotency_key=None,
                    idempotency_ttl_s=60,
                ).job_id
                result.submitted += 1
                outcome = score_jobs(db=db, model=model, job_ids=[job_id])
                assert outcome.succeeded == [job_id], outcome
                result.scored += 1
                result.latencies_s.append(time.perf_counter() - t0)
            except BaseException as exc:
                result.errors.append(exc)

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    return workers


OLD = timedelta(days=120)
