"""SQLite's hot writes go straight to the driver: what they store reads back through SQLAlchemy exactly as the ORM
would have written it (aware UTC timestamps, ids in order, scores with their model version and time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import func, select

from reportscore.storage.db import Database
from reportscore.storage.models import Job, JobStatus, Report, ReportScore
from reportscore.storage.repositories import jobs as jobs_repo

REPORTS = [
    {
        "abuse_type": "MSG",
        "report_text_len": 5,
        "profile_rating": 0.25,
        "popularity": 2,
        "lifetime_matches_created": 7,
        "report_id": None,
    },
    {
        "abuse_type": "PRF",
        "report_text_len": 0,
        "profile_rating": -1.5,
        "popularity": 5,
        "lifetime_matches_created": 0,
        "report_id": "r-2",
    },
]


def test_a_submitted_job_reads_back_as_written(db: Database) -> None:
    created = datetime(2026, 11, 27, 14, 0, 1, 123456, tzinfo=timezone(timedelta(hours=2)))  # not UTC on purpose
    with db.write() as session:
        first = jobs_repo.insert_job(
            session,
            job_id="j1",
            owner="t1",
            reports=REPORTS,
            created_at=created,
            idempotency_key="k",
            request_sha256="s" * 64,
            idempotency_expires_at=created + timedelta(hours=1),
        )
        second = jobs_repo.insert_job(
            session,
            job_id="j2",
            owner="t1",
            reports=REPORTS[:1],
            created_at=created,
            idempotency_key=None,
            request_sha256=None,
            idempotency_expires_at=None,
        )
    with db.read() as session:
        job = session.get(Job, "j1")
        assert job is not None
        assert job.status == JobStatus.PENDING
        assert job.created_at == created
        assert job.created_at.tzinfo == UTC
        assert job.enqueued_at == created
        assert job.idempotency_expires_at == created + timedelta(hours=1)
        assert (job.n_reports, job.attempts, job.idempotency_key) == (2, 0, "k")
        rows = session.scalars(select(Report).where(Report.job_id == "j1").order_by(Report.position)).all()
        n_scores = session.scalar(select(func.count()).select_from(ReportScore))
    assert first == [r.id for r in rows]
    assert second == [first[-1] + 1]
    assert [(r.client_report_id, r.abuse_type, r.profile_rating, r.popularity) for r in rows] == [
        (None, "MSG", 0.25, 2),
        ("r-2", "PRF", -1.5, 5),
    ]
    assert n_scores == 0
    assert all(r.owner == "t1" for r in rows)


def test_a_scored_job_and_its_results_read_back_as_written(db: Database) -> None:
    at = datetime(2026, 11, 27, 14, 0, 2, 5, tzinfo=UTC)
    with db.write() as session:
        job = jobs_repo.ScoredJob(
            job_id="s1",
            owner="t1",
            reports=REPORTS,
            scores=[0.25, 0.75],
            model_name="m",
            model_version="1.0.0",
            predict_ms=1.5,
            created_at=at,
        )
        jobs_repo.insert_scored_jobs(session, jobs=[job], finished_at=at + timedelta(milliseconds=3))
        ids = jobs_repo.insert_job(
            session,
            job_id="p1",
            owner="t1",
            reports=REPORTS,
            created_at=at,
            idempotency_key=None,
            request_sha256=None,
            idempotency_expires_at=None,
        )
    finished = at + timedelta(seconds=1)
    result = jobs_repo.JobResult("p1", ids, [0.5, 0.125], "m", "2.0.0", 2.0, attempt=1)
    with db.write() as session:
        claimed = jobs_repo.claim_jobs(session, job_ids=["p1"], now=at, lease_s=60, max_attempts=3).claimed
        assert claimed == ["p1"]
        assert jobs_repo.save_results(session, results=[result], finished_at=finished) == ["p1"]
        assert jobs_repo.save_results(session, results=[result], finished_at=finished) == []  # first result wins
    with db.read() as session:
        scored = session.get(Job, "s1")
        assert scored is not None
        assert (scored.status, scored.attempts, scored.model_version) == (JobStatus.SUCCESS, 1, "1.0.0")
        assert scored.finished_at == at + timedelta(milliseconds=3)
        s_rows, p_rows = (
            session.execute(
                select(ReportScore.score, ReportScore.model_version, ReportScore.scored_at, ReportScore.owner)
                .join(Report, Report.id == ReportScore.report_id)
                .where(Report.job_id == job_id)
                .order_by(Report.position)
            ).all()
            for job_id in ("s1", "p1")
        )
    assert {r.owner for r in [*s_rows, *p_rows]} == {"t1"}
    assert [(r.score, r.model_version, r.scored_at) for r in s_rows] == [
        (0.25, "1.0.0", at + timedelta(milliseconds=3)),
        (0.75, "1.0.0", at + timedelta(milliseconds=3)),
    ]
    assert [(r.score, r.model_version, r.scored_at) for r in p_rows] == [
        (0.5, "2.0.0", finished),
        (0.125, "2.0.0", finished),
    ]
