"""score_jobs against a real SQLite store: batching, first result wins, poison isolation, attempt limits."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select, update

from reportscore.jobs import submission as jobs_submission
from reportscore.jobs import views as task_views
from reportscore.scoring.service import score_jobs
from reportscore.storage.db import Database
from reportscore.storage.models import Job, JobStatus, Report, ReportScore
from tests.fakes import POISON_TEXT_LEN, FakeModel, fake_serving_model


def _report(popularity: int = 3, text_len: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "abuse_type": "MSG",
        "report_text_len": text_len,
        "profile_rating": 1.5,
        "popularity": popularity,
        "lifetime_matches_created": 7,
        **extra,
    }


def _submit(db: Database, reports: list[dict[str, Any]]) -> str:
    return jobs_submission.submit_job(
        db=db, reports=reports, owner="t", idempotency_key=None, idempotency_ttl_s=60
    ).job_id


def test_micro_batch_scores_several_jobs_in_one_model_call(db: Database) -> None:
    fake = FakeModel()
    jobs = [_submit(db, [_report(p) for p in pops]) for pops in ([1, 2], [5], [0, 4, 3])]
    outcome = score_jobs(db=db, model=fake_serving_model(fake), job_ids=jobs)
    assert sorted(outcome.succeeded) == sorted(jobs)
    assert fake.calls == [6]  # one vectorized call for three jobs
    for job_id, pops in zip(jobs, ([1, 2], [5], [0, 4, 3]), strict=True):
        view = task_views.get_task(db=db, task_id=job_id, owner="t")
        assert view is not None
        assert view.status == JobStatus.SUCCESS
        assert view.model_version == "fake-1"
        assert view.reports is not None
        assert [r.score for r in view.reports] == [p / 5 for p in pops]


def test_first_committed_result_wins_and_redelivery_writes_nothing(db: Database) -> None:
    job = _submit(db, [_report(2)])
    first = score_jobs(db=db, model=fake_serving_model(version="v1"), job_ids=[job])
    assert first.succeeded == [job]
    again = score_jobs(db=db, model=fake_serving_model(version="v2"), job_ids=[job])
    assert again.succeeded == []
    assert again.skipped == [job]
    with db.read() as s:
        versions = s.scalars(select(ReportScore.model_version).join(Report).where(Report.job_id == job)).all()
        attempts = s.scalar(select(Job.attempts).where(Job.id == job))
    assert versions == ["v1"]
    assert attempts == 1


def test_poison_job_fails_alone_with_its_reason(db: Database) -> None:
    good = _submit(db, [_report(1)])
    poison = _submit(db, [_report(1), _report(2, text_len=POISON_TEXT_LEN)])
    other = _submit(db, [_report(4)])
    outcome = score_jobs(db=db, model=fake_serving_model(), job_ids=[good, poison, other])
    assert sorted(outcome.succeeded) == sorted([good, other])
    assert outcome.failed == [poison]
    view = task_views.get_task(db=db, task_id=poison, owner="t")
    assert view is not None
    assert view.status == JobStatus.FAILURE
    assert view.error is not None
    assert "poison report" in view.error
    with db.read() as s:  # nothing partial from the failed job
        assert s.scalar(select(func.count()).select_from(ReportScore).join(Report).where(Report.job_id == poison)) == 0


def test_nan_scores_fail_the_job_instead_of_storing_nan(db: Database) -> None:
    job = _submit(db, [_report(1)])
    outcome = score_jobs(db=db, model=fake_serving_model(FakeModel(nan=True)), job_ids=[job])
    assert outcome.failed == [job]
    view = task_views.get_task(db=db, task_id=job, owner="t")
    assert view is not None
    assert view.error is not None
    assert "not a finite number" in view.error


def test_job_started_too_often_ends_failure(db: Database) -> None:
    job = _submit(db, [_report(1)])
    with db.write() as s:  # as if three processes had died while scoring it
        s.execute(update(Job).where(Job.id == job).values(attempts=3, status=JobStatus.STARTED))
    outcome = score_jobs(db=db, model=fake_serving_model(), job_ids=[job], max_attempts=3)
    assert outcome.failed == [job]
    view = task_views.get_task(db=db, task_id=job, owner="t")
    assert view is not None
    assert view.status == JobStatus.FAILURE
    assert view.error is not None
    assert "3 attempts" in view.error


def test_features_are_stored_typed(db: Database) -> None:
    job = _submit(db, [_report(5, report_id="client-1")])
    with db.read() as s:
        row = s.execute(select(Report).where(Report.job_id == job)).scalar_one()
    assert isinstance(row.report_text_len, int)
    assert isinstance(row.profile_rating, float)
    assert row.client_report_id == "client-1"
    assert np.isclose(row.profile_rating, 1.5)


def test_outcome_views_are_what_the_store_shows(db: Database) -> None:
    """The in-memory views (the API's task cache) equal what ``get_task`` reads back, with reports handed over in
    memory or read from the store, for successes and failures alike."""
    reports = [_report(1, report_id="a"), _report(2)]
    in_memory = jobs_submission.submission(reports=reports, owner="t", idempotency_key=None, ttl_s=60)
    with db.write() as s:
        submitted = in_memory(s)
    from_store = _submit(db, [_report(3, report_id="c")])
    poison = _submit(db, [_report(1, text_len=POISON_TEXT_LEN)])
    features = jobs_submission.handover(submitted, reports)
    assert features is not None
    outcome = score_jobs(
        db=db,
        model=fake_serving_model(),
        job_ids=[submitted.job_id, from_store, poison],
        features={submitted.job_id: features},
    )
    assert sorted(outcome.views) == sorted([submitted.job_id, from_store, poison])
    assert outcome.owners == dict.fromkeys(outcome.views, "t")
    for job_id, view in outcome.views.items():
        assert view == task_views.get_task(db=db, task_id=job_id, owner="t")
    assert outcome.views[poison].status == JobStatus.FAILURE


def test_claims_and_results_can_go_through_another_writer(db: Database) -> None:
    job = _submit(db, [_report(1)])
    calls: list[str] = []

    def write(work: Any) -> Any:
        calls.append(work.__name__)
        with db.write() as s:
            return work(s)

    outcome = score_jobs(db=db, model=fake_serving_model(), job_ids=[job], write=write)
    assert outcome.succeeded == [job]
    assert calls == ["claim", "save"]
