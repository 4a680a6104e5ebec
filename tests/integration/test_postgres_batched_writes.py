"""The PostgreSQL write paths of distributed mode, against a real PostgreSQL: a group of submits stored in a few
statements, a message of several jobs claimed together (a retried one alone), all scores written in one UPDATE."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text, update

from reportscore.reports import service as reports_service
from reportscore.scoring.service import score_jobs
from reportscore.storage import migrate
from reportscore.storage.db import Database
from reportscore.storage.group_commit import GroupCommitter
from reportscore.storage.models import Job
from reportscore.storage.repositories import jobs as jobs_repo
from tests.fakes import FakeModel, fake_serving_model

pytestmark = pytest.mark.integration


def _report(popularity: int, client_id: str | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "abuse_type": "PRF" if popularity % 2 else "MSG",
        "report_text_len": 10 + popularity,
        "profile_rating": 2,  # an int where a float is expected, as JSON can give it
        "popularity": popularity,
        "lifetime_matches_created": 7,
    }
    if client_id is not None:
        report["report_id"] = client_id
    return report


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    migrate.upgrade_to_head(database)
    yield database
    database.dispose()


def _submit(db: Database, reports: list[dict[str, Any]]) -> str:
    return reports_service.submit_job(
        db=db, reports=reports, owner="t", idempotency_key=None, idempotency_ttl_s=60
    ).job_id


def test_a_group_of_submits_stores_every_job_and_report_in_order(pg: Database) -> None:
    bodies = [[_report(p % 6, f"c{n}-{p}") for p in range(n)] for n in (1, 3, 100, 2)]
    works: list[Any] = [
        reports_service.submission(reports=body, owner=f"o{i}", idempotency_key=None, ttl_s=60)
        for i, body in enumerate(bodies)
    ]
    keyed = reports_service.submission(reports=bodies[0], owner="o0", idempotency_key="k", ttl_s=60)

    def failing(session: Any) -> Any:
        works[0](session)
        raise ValueError("boom")

    items: list[Any] = [*works[:2], keyed, failing, *works[2:]]
    futures: list[Future[Any]] = [Future() for _ in items]
    GroupCommitter(pg)._commit(list(zip(items, futures, strict=True)))
    with pytest.raises(ValueError, match="boom"):
        futures[3].result()
    submitted = [f.result() for i, f in enumerate(futures) if i != 3]
    assert len({s.job_id for s in submitted}) == 5
    for result, body, owner in zip(
        [submitted[0], submitted[1], submitted[3], submitted[4]], bodies, ["o0", "o1", "o2", "o3"], strict=True
    ):
        assert result.created
        with pg.read() as s:
            rows = s.execute(
                text(
                    "SELECT r.id, r.position, r.client_report_id, r.popularity, r.profile_rating, r.owner, j.status, "
                    "j.n_reports, j.owner FROM reports r JOIN jobs j ON j.id = r.job_id WHERE r.job_id = :j "
                    "ORDER BY r.position"
                ),
                {"j": result.job_id},
            ).all()
        assert [r[0] for r in rows] == result.report_ids  # the ids handed back are in report order
        assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
            (rep["report_id"], rep["popularity"], 2.0, owner) for rep in body
        ]
        assert {(r[6], r[7], r[8]) for r in rows} == {("PENDING", len(body), owner)}
    with pg.read() as s:
        assert s.execute(text("SELECT count(*) FROM jobs")).scalar() == 5  # the failing item left nothing


def test_a_message_of_jobs_claims_them_together_but_a_retried_job_alone(pg: Database) -> None:
    fresh = [_submit(pg, [_report(1)]) for _ in range(3)]
    retried = _submit(pg, [_report(2)])
    with pg.write() as s:
        s.execute(update(Job).where(Job.id == retried).values(attempts=1))
    message = [fresh[0], retried, fresh[1], fresh[2]]
    now = datetime.now(UTC)
    with pg.write() as s:
        claimed, exhausted, deferred, info = jobs_repo.claim_jobs(
            s, job_ids=message, now=now, lease_s=60, max_attempts=3, extra_pending=8, extra_max_reports=100
        )
    assert (claimed, exhausted) == ([retried], [])
    assert info is not None
    assert info[retried].attempts == 2
    assert sorted(deferred) == sorted(fresh)
    with pg.write() as s:
        claimed, exhausted, deferred, info = jobs_repo.claim_jobs(
            s, job_ids=deferred, now=now, lease_s=60, max_attempts=3, extra_pending=8, extra_max_reports=100
        )
    assert (sorted(claimed), exhausted, deferred) == (sorted(fresh), [], [])
    assert info is not None
    assert {job.attempts for job in info.values()} == {1}


def test_a_retried_job_out_of_attempts_fails_with_its_reason(pg: Database) -> None:
    job = _submit(pg, [_report(1)])
    with pg.write() as s:
        s.execute(update(Job).where(Job.id == job).values(attempts=3, status="STARTED"))
    outcome = score_jobs(db=pg, model=fake_serving_model(), job_ids=[job], max_attempts=3, extra_pending=8)
    assert outcome.failed == [job]
    with pg.read() as s:
        row = s.execute(text("SELECT status, error FROM jobs WHERE id = :j"), {"j": job}).one()
    assert row[0] == "FAILURE"
    assert row[1].startswith("gave up after 3 attempts")


def test_scores_of_a_batch_are_written_once_and_the_first_result_wins(pg: Database) -> None:
    jobs = [_submit(pg, [_report(p) for p in pops]) for pops in ([1, 2], [5], [0, 4, 3])]
    first = score_jobs(
        db=pg,
        model=fake_serving_model(FakeModel(), version="v1"),
        job_ids=jobs[:1],
        extra_pending=8,
        extra_max_reports=100,
    )
    assert sorted(first.succeeded) == sorted(jobs)  # the woken worker took the other pending jobs too
    again = score_jobs(
        db=pg, model=fake_serving_model(FakeModel(), version="v2"), job_ids=jobs, extra_pending=8, extra_max_reports=100
    )
    assert again.succeeded == []
    for job_id, pops in zip(jobs, ([1, 2], [5], [0, 4, 3]), strict=True):
        with pg.read() as s:
            rows = s.execute(
                text("SELECT score, model_version, scored_at FROM reports WHERE job_id = :j ORDER BY position"),
                {"j": job_id},
            ).all()
        assert [r[0] for r in rows] == [p / 5 for p in pops]
        assert {r[1] for r in rows} == {"v1"}
        assert all(r[2] is not None for r in rows)
