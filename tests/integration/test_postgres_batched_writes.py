"""The PostgreSQL write paths of distributed mode, against a real PostgreSQL: a group of submits stored in a few
statements, a message of several jobs claimed together (a retried one alone), all scores written in one UPDATE."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text, update

from reportscore.jobs import submission as jobs_submission
from reportscore.scoring.service import score_jobs
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


def _submit(db: Database, reports: list[dict[str, Any]]) -> str:
    return jobs_submission.submit_job(
        db=db, reports=reports, owner="t", idempotency_key=None, idempotency_ttl_s=60
    ).job_id


def test_a_group_of_submits_stores_every_job_and_report_in_order(pg_db: Database) -> None:
    bodies = [[_report(p % 6, f"c{n}-{p}") for p in range(n)] for n in (1, 3, 100, 2)]
    works: list[Any] = [
        jobs_submission.submission(reports=body, owner=f"o{i}", idempotency_key=None, ttl_s=60)
        for i, body in enumerate(bodies)
    ]
    keyed = jobs_submission.submission(reports=bodies[0], owner="o0", idempotency_key="k", ttl_s=60)

    def failing(session: Any) -> Any:
        works[0](session)
        raise ValueError("boom")

    items: list[Any] = [*works[:2], keyed, failing, *works[2:]]
    futures: list[Future[Any]] = [Future() for _ in items]
    GroupCommitter(pg_db)._commit(list(zip(items, futures, strict=True)))
    with pytest.raises(ValueError, match="boom"):
        futures[3].result()
    submitted = [f.result() for i, f in enumerate(futures) if i != 3]
    assert len({s.job_id for s in submitted}) == 5
    for result, body, owner in zip(
        [submitted[0], submitted[1], submitted[3], submitted[4]], bodies, ["o0", "o1", "o2", "o3"], strict=True
    ):
        assert result.created
        with pg_db.read() as s:
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
    with pg_db.read() as s:
        assert s.execute(text("SELECT count(*) FROM jobs")).scalar() == 5  # the failing item left nothing


def test_a_message_of_jobs_claims_them_together_but_a_retried_job_alone(pg_db: Database) -> None:
    fresh = [_submit(pg_db, [_report(1)]) for _ in range(3)]
    retried = _submit(pg_db, [_report(2)])
    with pg_db.write() as s:
        s.execute(update(Job).where(Job.id == retried).values(attempts=1))
    message = [fresh[0], retried, fresh[1], fresh[2]]
    now = datetime.now(UTC)
    with pg_db.write() as s:
        claimed, exhausted, deferred, info = jobs_repo.claim_jobs(
            s, job_ids=message, now=now, lease_s=60, max_attempts=3, extra_pending=8, extra_max_reports=100
        )
    assert (claimed, exhausted) == ([retried], [])
    assert info is not None
    assert info[retried].attempts == 2
    assert sorted(deferred) == sorted(fresh)
    with pg_db.write() as s:
        claimed, exhausted, deferred, info = jobs_repo.claim_jobs(
            s, job_ids=deferred, now=now, lease_s=60, max_attempts=3, extra_pending=8, extra_max_reports=100
        )
    assert (sorted(claimed), exhausted, deferred) == (sorted(fresh), [], [])
    assert info is not None
    assert {job.attempts for job in info.values()} == {1}


def test_a_retried_job_out_of_attempts_fails_with_its_reason(pg_db: Database) -> None:
    job = _submit(pg_db, [_report(1)])
    with pg_db.write() as s:
        s.execute(update(Job).where(Job.id == job).values(attempts=3, status="STARTED"))
    outcome = score_jobs(db=pg_db, model=fake_serving_model(), job_ids=[job], max_attempts=3, extra_pending=8)
    assert outcome.failed == [job]
    with pg_db.read() as s:
        row = s.execute(text("SELECT status, error FROM jobs WHERE id = :j"), {"j": job}).one()
    assert row[0] == "FAILURE"
    assert row[1].startswith("gave up after 3 attempts")


def test_scores_of_a_batch_are_written_once_and_the_first_result_wins(pg_db: Database) -> None:
    jobs = [_submit(pg_db, [_report(p) for p in pops]) for pops in ([1, 2], [5], [0, 4, 3])]
    first = score_jobs(
        db=pg_db,
        model=fake_serving_model(FakeModel(), version="v1"),
        job_ids=jobs[:1],
        extra_pending=8,
        extra_max_reports=100,
    )
    assert sorted(first.succeeded) == sorted(jobs)  # the woken worker took the other pending jobs too
    again = score_jobs(
        db=pg_db,
        model=fake_serving_model(FakeModel(), version="v2"),
        job_ids=jobs,
        extra_pending=8,
        extra_max_reports=100,
    )
    assert again.succeeded == []
    for job_id, pops in zip(jobs, ([1, 2], [5], [0, 4, 3]), strict=True):
        with pg_db.read() as s:
            rows = s.execute(
                text(
                    "SELECT s.score, s.model_version, s.scored_at FROM reports AS r "
                    "JOIN report_scores AS s ON s.report_id = r.id WHERE r.job_id = :j ORDER BY r.position"
                ),
                {"j": job_id},
            ).all()
        assert [r[0] for r in rows] == [p / 5 for p in pops]
        assert {r[1] for r in rows} == {"v1"}
        assert all(r[2] is not None for r in rows)


def _clone_job(db: Database, template: str, copies: int, *, salt: str, analyze: bool) -> None:
    """``copies`` copies of a stored job and its reports, made by the server (hundreds of thousands of rows in a
    second or two): a table the size where the planner's choices start to matter."""
    with db.write() as session:
        for table, key in (("jobs", "id"), ("reports", "job_id")):
            columns = [
                name
                for (name,) in session.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns WHERE table_name = :t "
                        "AND table_schema = current_schema() ORDER BY ordinal_position"
                    ),
                    {"t": table},
                )
                if not (table == "reports" and name == "id")
            ]
            values = ", ".join(f"uuid_in(md5('{salt}' || g::text)::cstring)::text" if c == key else c for c in columns)
            session.execute(
                text(
                    f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} "  # noqa: S608 - names from the catalog
                    f"FROM {table}, generate_series(1, :n) AS g WHERE {key} = :t"
                ),
                {"n": copies, "t": template},
            )
    if analyze:
        with db.write_engine.connect() as conn:
            conn.execute(text("ANALYZE jobs"))
            conn.execute(text("ANALYZE reports"))
            conn.commit()


def _seq_scans_of_reports(session: Any) -> int:
    """Sequential scans of ``reports`` counted by this connection (its transaction so far, plus what earlier ones
    have not reported yet: compare before and after)."""
    return int(
        session.execute(text("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'reports'")).scalar_one()
    )


def test_a_claim_of_small_jobs_reads_and_scores_them_by_index_in_a_large_table(pg_db: Database) -> None:
    """A worker's reads and score writes for a handful of 1-report jobs must not scan a table of 100-report jobs:
    estimated from the average job size, ``job_id IN (...)`` was planned as a sequential scan of the whole table
    (over a second per claim on millions of reports, which stalled the queue). As in production, the statistics
    are those of a smaller table: analyzed, then grown tenfold before the next ANALYZE."""
    with pg_db.write() as session:
        for table in ("jobs", "reports"):  # this test's own database: no ANALYZE behind its back
            session.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    template = _submit(pg_db, [_report(p % 6) for p in range(100)])
    _clone_job(pg_db, template, copies=300, salt="a", analyze=True)
    _clone_job(pg_db, template, copies=3000, salt="b", analyze=False)
    small = [_submit(pg_db, [_report(i % 6, f"s{i}")]) for i in range(64)]
    with pg_db.write() as session:
        before = _seq_scans_of_reports(session)
        rows = jobs_repo.load_features(session, small)
        assert _seq_scans_of_reports(session) == before
    index = {job_id: i for i, job_id in enumerate(small)}
    assert rows.job_ids == sorted(small)  # grouped by job, jobs in id order
    assert rows.client_report_ids == [f"s{index[j]}" for j in rows.job_ids]
    assert rows.columns["popularity"] == [index[j] % 6 for j in rows.job_ids]
    results = [
        jobs_repo.JobResult(
            job_id=job_id,
            report_ids=[rid],
            scores=[i / 100],
            model_name="m",
            model_version="v",
            predict_ms=1.0,
            attempt=0,  # never claimed: the fence compares with the stored attempts
        )
        for i, (job_id, rid) in enumerate(zip(rows.job_ids, rows.report_ids, strict=True))
    ]
    with pg_db.write() as session:
        before = _seq_scans_of_reports(session)
        assert jobs_repo.save_results(session, results=results, finished_at=datetime.now(UTC)) == sorted(small)
        assert _seq_scans_of_reports(session) == before
        assert session.execute(text("SHOW enable_seqscan")).scalar_one() == "on"  # only for that statement
    with pg_db.read() as session:
        stored = session.execute(
            text(
                "SELECT r.job_id, s.score FROM reports AS r JOIN report_scores AS s ON s.report_id = r.id "
                "WHERE r.job_id = ANY(:ids)"
            ),
            {"ids": small},
        ).all()
    assert sorted(stored) == sorted((job_id, i / 100) for i, job_id in enumerate(sorted(small)))

    # and 64 jobs of 100 reports: 6,400 scores in one statement
    with pg_db.read() as session:
        large = list(session.execute(text("SELECT id FROM jobs WHERE n_reports = 100 ORDER BY id LIMIT 64")).scalars())
    with pg_db.write() as session:
        before = _seq_scans_of_reports(session)
        rows = jobs_repo.load_features(session, large)
        assert _seq_scans_of_reports(session) == before
    assert len(rows.report_ids) == 6400
    by_job: dict[str, list[int]] = {}
    for job_id, rid in zip(rows.job_ids, rows.report_ids, strict=True):
        by_job.setdefault(job_id, []).append(rid)
    results = [
        jobs_repo.JobResult(
            job_id=job_id,
            report_ids=rids,
            scores=[0.25] * len(rids),
            model_name="m",
            model_version="v",
            predict_ms=1,
            attempt=0,  # never claimed: the fence compares with the stored attempts
        )
        for job_id, rids in by_job.items()
    ]
    with pg_db.write() as session:
        before = _seq_scans_of_reports(session)
        assert jobs_repo.save_results(session, results=results, finished_at=datetime.now(UTC)) == large
        assert _seq_scans_of_reports(session) == before
    with pg_db.read() as session:
        scored = session.execute(
            text(
                "SELECT count(*) FROM reports AS r JOIN report_scores AS s ON s.report_id = r.id "
                "WHERE r.job_id = ANY(:ids) AND s.score = 0.25"
            ),
            {"ids": large},
        ).scalar_one()
    assert scored == 6400
