"""Retention on SQLite: purge deletes old finished jobs with every per-report row in bounded batches, keeps labelled
ones on request and never an unfinished one, does not fail concurrent scoring; the maintenance pass forgets expired
idempotency keys and removes old delivered callbacks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from reportscore.jobs import submission as jobs_submission
from reportscore.retention.service import maintenance_pass, purge
from reportscore.storage.db import Database
from reportscore.storage.models import CallbackDelivery, DriftCount, Job
from reportscore.storage.repositories import drift as drift_repo
from tests import retention_scenarios as sc

NINETY_DAYS_S = 90 * 86400


def test_purge_deletes_old_finished_jobs_with_all_their_rows_in_batches(db: Database) -> None:
    now = datetime.now(UTC)
    old = [sc.scored_job(db, created_at=now - sc.OLD - timedelta(minutes=i)) for i in range(5)]
    sc.label(db, old[0])
    sc.add_reasons_and_callback(db, old[1], delivered_at=now)
    recent = sc.scored_job(db, created_at=now - timedelta(days=10))
    unfinished = sc.pending_job(db, created_at=now - sc.OLD)
    before = sc.rows_of(db, old[0])
    assert before["report_scores"] == 3
    assert before["report_feedback"] == 1
    assert sc.rows_of(db, old[1])["report_reasons"] == 1
    assert sc.rows_of(db, old[1])["callback_deliveries"] == 1

    seen: list[int] = []
    result = purge(
        db,
        older_than_s=NINETY_DAYS_S,
        keep_labelled=False,
        batch_jobs=2,
        progress=seen.append,
        yield_to_writers=False,
    )
    assert result.jobs == 5
    assert result.batches == 3
    assert seen == [2, 4, 5]
    assert all(sc.gone(db, job) for job in old)
    assert sc.rows_of(db, recent)["report_scores"] == 3
    assert sc.rows_of(db, unfinished)["jobs"] == 1  # an accepted job always ends with a result


def test_keep_labelled_keeps_every_job_with_an_outcome(db: Database) -> None:
    now = datetime.now(UTC)
    labelled = sc.scored_job(db, created_at=now - sc.OLD)
    sc.label(db, labelled)
    unlabelled = sc.scored_job(db, created_at=now - sc.OLD)
    result = purge(db, older_than_s=NINETY_DAYS_S, keep_labelled=True, batch_jobs=1000, yield_to_writers=False)
    assert result.jobs == 1
    assert sc.gone(db, unlabelled)
    assert sc.rows_of(db, labelled)["report_feedback"] == 1


def test_purge_drops_drift_windows_before_the_cutoff_only(db: Database) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with db.write() as s:
        drift_repo.add_counts(s, {("v", now - sc.OLD, "score", "0"): 5, ("v", now, "score", "0"): 7})
    result = purge(db, older_than_s=NINETY_DAYS_S, keep_labelled=False, batch_jobs=10, yield_to_writers=False)
    assert result.drift_rows == 1
    with db.read() as s:
        assert list(s.scalars(select(DriftCount.count))) == [7]


def test_purge_under_concurrent_scoring_fails_no_request(db: Database) -> None:
    now = datetime.now(UTC)
    old = sc.scored_jobs(db, created_at=now - sc.OLD, count=100, n_reports=20)
    stop = threading.Event()
    load = sc.LoadResult()
    workers = sc.scoring_load(db, stop, load)
    try:
        result = purge(db, older_than_s=NINETY_DAYS_S, keep_labelled=False, batch_jobs=20)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert result.jobs == 100
    assert result.batches == 5
    assert load.errors == []
    assert load.scored > 0
    assert all(sc.gone(db, job) for job in old[:5])


def test_maintenance_forgets_expired_keys_and_old_delivered_callbacks(db: Database) -> None:
    now = datetime.now(UTC)
    expired = jobs_submission.submit_job(
        db=db, reports=[sc.report()], owner=sc.OWNER, idempotency_key="k-old", idempotency_ttl_s=60
    ).job_id
    live = jobs_submission.submit_job(
        db=db, reports=[sc.report()], owner=sc.OWNER, idempotency_key="k-live", idempotency_ttl_s=86400
    ).job_id
    delivered_long_ago = sc.scored_job(db, created_at=now - timedelta(days=30))
    sc.add_reasons_and_callback(db, delivered_long_ago, delivered_at=now - timedelta(days=8))
    delivered_today = sc.scored_job(db, created_at=now)
    sc.add_reasons_and_callback(db, delivered_today, delivered_at=now)
    pending = sc.scored_job(db, created_at=now - timedelta(days=30))
    sc.add_reasons_and_callback(db, pending, delivered_at=None)

    result = maintenance_pass(db, callback_retention_s=7 * 86400, batch=1, now=now + timedelta(minutes=5))
    assert result is not None
    assert (result.idempotency_keys, result.callbacks) == (1, 1)
    with db.read() as s:
        keys = dict(s.execute(select(Job.id, Job.idempotency_key).where(Job.id.in_([expired, live]))).all())
        callbacks = set(s.scalars(select(CallbackDelivery.job_id)))
    assert keys == {expired: None, live: "k-live"}
    assert callbacks == {delivered_today, pending}
    assert sc.rows_of(db, delivered_long_ago)["reports"] == 3  # only the outbox row goes
    # the key can be used again at once
    again = jobs_submission.submit_job(
        db=db, reports=[sc.report(1)], owner=sc.OWNER, idempotency_key="k-old", idempotency_ttl_s=60
    )
    assert again.created


@pytest.mark.parametrize("text", ["90", "d", "-1d", "0s", "1y"])
def test_durations_are_refused_without_a_known_unit(text: str) -> None:
    from reportscore.durations import parse_duration

    with pytest.raises(ValueError, match=r"expected|positive"):
        parse_duration(text)


def test_durations() -> None:
    from reportscore.durations import parse_duration

    assert parse_duration("90d") == NINETY_DAYS_S
    assert parse_duration("36h") == 36 * 3600
