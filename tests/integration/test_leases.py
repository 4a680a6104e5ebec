"""Job leases against a real store: a heartbeat keeps a long job's short lease, and a worker whose lease ran out
and whose job was claimed again cannot write its late result (fenced by the claim's attempt number)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from reportscore.jobs import submission as jobs_submission
from reportscore.scoring.leases import LeaseKeeper
from reportscore.scoring.service import BatchOutcome, score_jobs
from reportscore.storage import migrate
from reportscore.storage.db import Database
from reportscore.storage.repositories import jobs as jobs_repo
from tests.fakes import FakeModel, fake_serving_model

pytestmark = pytest.mark.integration

REPORTS: list[dict[str, Any]] = [
    {"abuse_type": "MSG", "report_text_len": 10, "profile_rating": 2.0, "popularity": p, "lifetime_matches_created": 7}
    for p in (1, 4)
]


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[Database]:
    if request.param == "sqlite":
        yield request.getfixturevalue("db")
        return
    database = Database(request.getfixturevalue("pg_url"))
    migrate.upgrade_to_head(database)
    yield database
    database.dispose()


def _submit(db: Database) -> str:
    return jobs_submission.submit_job(
        db=db, reports=REPORTS, owner="t", idempotency_key=None, idempotency_ttl_s=60
    ).job_id


def _job(db: Database, job_id: str) -> tuple[str, int, datetime | None, str | None]:
    with db.read() as s:
        row = s.execute(
            text("SELECT status, attempts, leased_until, model_version FROM jobs WHERE id = :j"), {"j": job_id}
        ).one()
    leased_until = row[2]
    if isinstance(leased_until, str):  # SQLite hands back text through a raw query
        leased_until = datetime.fromisoformat(leased_until)
    if leased_until is not None and leased_until.tzinfo is None:
        leased_until = leased_until.replace(tzinfo=UTC)
    return row[0], row[1], leased_until, row[3]


def _scores(db: Database, job_id: str) -> list[tuple[float | None, str | None]]:
    with db.read() as s:
        rows = s.execute(
            text(
                "SELECT s.score, s.model_version FROM reports AS r LEFT JOIN report_scores AS s ON s.report_id = r.id "
                "WHERE r.job_id = :j ORDER BY r.position"
            ),
            {"j": job_id},
        ).all()
    return [(r[0], r[1]) for r in rows]


def _until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _score_in_background(
    pool: ThreadPoolExecutor, db: Database, job_id: str, *, version: str, gate: threading.Event, **kw: Any
) -> Future[BatchOutcome]:
    model = fake_serving_model(FakeModel(gate=gate), version=version)
    return pool.submit(score_jobs, db=db, model=model, job_ids=[job_id], max_attempts=3, **kw)


@pytest.mark.timeout(60)
def test_a_heartbeat_keeps_a_long_job_past_its_lease_and_stops_when_it_ends(store: Database) -> None:
    job_id = _submit(store)
    lease_s = 1.0
    keeper = LeaseKeeper(db=store, lease_s=lease_s, interval_s=0.2).start()
    gate = threading.Event()
    try:
        with ThreadPoolExecutor(1) as pool:
            running = _score_in_background(pool, store, job_id, version="v1", gate=gate, lease_s=lease_s, leases=keeper)
            _until(lambda: _job(store, job_id)[0] == "STARTED")
            first_lease = _job(store, job_id)[2]
            assert first_lease is not None
            # the job runs three times longer than its lease; at every look it is still leased in the future
            while datetime.now(UTC) < first_lease + timedelta(seconds=2 * lease_s):
                status, attempts, leased_until, _ = _job(store, job_id)
                assert (status, attempts) == ("STARTED", 1)
                assert leased_until is not None
                assert leased_until > datetime.now(UTC) - timedelta(seconds=0.1)
                with store.read() as s:
                    stranded = jobs_repo.find_stranded(s, now=datetime.now(UTC), pending_age_s=0.0, limit=10)
                assert job_id not in stranded
                time.sleep(0.05)
            assert keeper.held() == {job_id: 1}
            gate.set()
            outcome = running.result(timeout=20)
    finally:
        gate.set()
        keeper.stop()
    assert outcome.succeeded == [job_id]
    assert keeper.held() == {}  # nothing is renewed once the result is written
    assert _job(store, job_id)[:2] == ("SUCCESS", 1)


@pytest.mark.timeout(60)
def test_a_late_worker_whose_job_was_claimed_again_writes_nothing_even_when_it_finishes_first(
    store: Database,
) -> None:
    job_id = _submit(store)
    late_leases = LeaseKeeper(db=store, lease_s=0.5, interval_s=0.1)  # never started: the worker is cut off
    late_gate, new_gate = threading.Event(), threading.Event()
    try:
        with ThreadPoolExecutor(2) as pool:
            late = _score_in_background(
                pool, store, job_id, version="late", gate=late_gate, lease_s=0.5, leases=late_leases
            )
            _until(lambda: _job(store, job_id)[0] == "STARTED")
            _until(lambda: (lease := _job(store, job_id)[2]) is not None and lease < datetime.now(UTC))
            # the lease ran out: another worker claims the job again (attempt 2) and is still scoring it
            new = _score_in_background(pool, store, job_id, version="new", gate=new_gate, lease_s=60)
            _until(lambda: _job(store, job_id)[1] == 2)
            # the late worker's next renewal finds the job held by a later attempt and drops it
            assert late_leases.renew_once() == [job_id]
            assert late_leases.held() == {}
            late_gate.set()  # the late worker finishes first ...
            late_outcome = late.result(timeout=20)
            assert late_outcome.succeeded == []
            assert late_outcome.skipped == [job_id]
            assert _job(store, job_id)[:2] == ("STARTED", 2)  # ... and wrote nothing
            assert _scores(store, job_id) == [(None, None), (None, None)]
            new_gate.set()
            new_outcome = new.result(timeout=20)
    finally:
        late_gate.set()
        new_gate.set()
    assert new_outcome.succeeded == [job_id]
    assert _job(store, job_id)[::3] == ("SUCCESS", "new")
    assert _scores(store, job_id) == [(0.2, "new"), (0.8, "new")]


def test_a_failure_is_fenced_by_the_attempt_too(store: Database) -> None:
    job_id = _submit(store)
    now = datetime.now(UTC)
    with store.write() as s:
        assert jobs_repo.claim_jobs(s, job_ids=[job_id], now=now, lease_s=1, max_attempts=3).claimed == [job_id]
    with store.write() as s:  # claimed again after the first lease ran out
        later = now + timedelta(seconds=5)
        assert jobs_repo.claim_jobs(s, job_ids=[job_id], now=later, lease_s=1, max_attempts=3).claimed == [job_id]
    with store.write() as s:
        assert not jobs_repo.save_failure(s, job_id=job_id, attempt=1, error="late", finished_at=later)
        assert jobs_repo.renew_leases(s, held={job_id: 1}, now=later, lease_s=60) == []
        assert jobs_repo.renew_leases(s, held={job_id: 2}, now=later, lease_s=60) == [job_id]
        assert jobs_repo.save_failure(s, job_id=job_id, attempt=2, error="held", finished_at=later)
    assert _job(store, job_id)[:2] == ("FAILURE", 2)


def test_a_job_whose_lease_ran_out_is_re_published_at_once_then_only_after_the_pending_age(store: Database) -> None:
    job_id = _submit(store)
    enqueued = datetime.now(UTC)
    with store.write() as s:
        jobs_repo.mark_enqueued(s, job_ids=[job_id], at=enqueued)
        jobs_repo.claim_jobs(s, job_ids=[job_id], now=enqueued, lease_s=15, max_attempts=3)

    def stranded(at: datetime) -> bool:
        with store.read() as s:
            return job_id in jobs_repo.find_stranded(s, now=at, pending_age_s=30, limit=10)

    expired = enqueued + timedelta(seconds=16)
    assert not stranded(enqueued + timedelta(seconds=14))  # leased
    assert stranded(expired)  # the worker died: its message was consumed, so no waiting for the pending age
    with store.write() as s:
        jobs_repo.mark_enqueued(s, job_ids=[job_id], at=expired)
    assert not stranded(expired + timedelta(seconds=5))  # re-published, not yet claimed: not again at every pass
    assert stranded(expired + timedelta(seconds=31))  # that message was lost too
