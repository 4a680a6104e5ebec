"""Drift counts and retention on a real PostgreSQL: concurrent workers' UPSERTs add up exactly, PSI matches NumPy;
purge cascades through every per-report table and fails no concurrent scoring; the maintenance pass runs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from reportscore.jobs import submission as jobs_submission
from reportscore.retention.service import maintenance_pass, purge
from reportscore.scoring.service import score_jobs
from reportscore.storage.db import Database
from reportscore.storage.models import DriftCount, Job
from tests import retention_scenarios as sc
from tests.fakes import FakeModel, fake_serving_model
from tests.unit.test_drift import _expected_by_numpy, _numpy_psi, _register, _report, _rows

pytestmark = pytest.mark.integration


def test_concurrent_workers_drift_counts_add_up_and_psi_matches_numpy(pg_db: Database) -> None:
    _register(pg_db)
    rows = _rows(2400, seed=7)
    job_ids = [
        jobs_submission.submit_job(
            db=pg_db, reports=rows[i : i + 40], owner="t", idempotency_key=None, idempotency_ttl_s=60
        ).job_id
        for i in range(0, len(rows), 40)
    ]
    model = fake_serving_model(FakeModel())
    batches = [job_ids[i : i + 3] for i in range(0, len(job_ids), 3)]
    with ThreadPoolExecutor(max_workers=4) as pool:  # four workers upsert the same bins at the same time
        outcomes = list(pool.map(lambda b: score_jobs(db=pg_db, model=model, job_ids=b), batches))
    assert sum(len(o.succeeded) for o in outcomes) == len(job_ids)
    with pg_db.read() as s:
        stored: dict[str, dict[str, int]] = {}
        for feature, label, count in s.execute(select(DriftCount.feature, DriftCount.bin, DriftCount.count)):
            stored.setdefault(feature, {})[label] = count
    expected = _expected_by_numpy(rows)
    assert sum(stored["score"].values()) == 2400
    for name, (_, observed) in expected.items():
        if name != "abuse_type":
            assert stored[name] == {str(i): int(n) for i, n in enumerate(observed) if n}, name
    (window,) = _report(pg_db).windows
    for name, (ref, observed) in expected.items():
        assert window.psi[name] == pytest.approx(_numpy_psi(ref, observed), rel=1e-9, abs=1e-12), name


def test_purge_cascades_and_fails_no_concurrent_scoring(pg_db: Database) -> None:
    now = datetime.now(UTC)
    old = sc.scored_jobs(pg_db, created_at=now - sc.OLD, count=200, n_reports=20)
    sc.label(pg_db, old[0])
    sc.add_reasons_and_callback(pg_db, old[1], delivered_at=now)
    labelled_rows = sc.rows_of(pg_db, old[0])
    assert labelled_rows["report_feedback"] == 1
    stop = threading.Event()
    load = sc.LoadResult()
    workers = sc.scoring_load(pg_db, stop, load, threads=3)
    try:
        kept = purge(pg_db, older_than_s=90 * 86400, keep_labelled=True, batch_jobs=50)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert load.errors == []
    assert load.scored > 0
    assert kept.jobs == 199
    assert kept.batches == 4
    assert sc.rows_of(pg_db, old[0]) == labelled_rows
    assert all(sc.gone(pg_db, job) for job in old[1:])
    everything = purge(pg_db, older_than_s=90 * 86400, keep_labelled=False, batch_jobs=50, yield_to_writers=False)
    assert everything.jobs == 1
    assert sc.gone(pg_db, old[0])


def test_maintenance_pass_on_postgres(pg_db: Database) -> None:
    now = datetime.now(UTC)
    job = jobs_submission.submit_job(
        db=pg_db, reports=[sc.report()], owner=sc.OWNER, idempotency_key="k", idempotency_ttl_s=60
    ).job_id
    delivered = sc.scored_job(pg_db, created_at=now - timedelta(days=30))
    sc.add_reasons_and_callback(pg_db, delivered, delivered_at=now - timedelta(days=8))
    result = maintenance_pass(pg_db, callback_retention_s=7 * 86400, batch=100, now=now + timedelta(hours=1))
    assert result is not None
    assert (result.idempotency_keys, result.callbacks) == (1, 1)
    with pg_db.read() as s:
        assert s.scalar(select(Job.idempotency_key).where(Job.id == job)) is None
    assert sc.rows_of(pg_db, delivered)["callback_deliveries"] == 0
