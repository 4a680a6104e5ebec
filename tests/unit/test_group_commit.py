"""The group committer: a failing work item does not sink the others of its group; after stop, work is refused;
scored jobs of one group are written together. The embedded writer's own pragmas."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from reportscore.jobs import submission as jobs_submission
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.group_commit import GroupCommitter
from reportscore.storage.models import DriftCount, Job

REPORT = {
    "abuse_type": "MSG",
    "report_text_len": 1,
    "profile_rating": 1.0,
    "popularity": 1,
    "lifetime_matches_created": 1,
}


def test_one_failing_item_rolls_back_only_its_own_part(db: Database) -> None:
    committer = GroupCommitter(db)
    good = jobs_submission.submission(reports=[REPORT], owner="t", idempotency_key=None, ttl_s=60)

    def bad(session: Session) -> Any:
        good(session)  # writes, then fails: none of it may stay
        raise ValueError("boom")

    futures: list[Future[Any]] = [Future(), Future(), Future()]
    committer._commit([(good, futures[0]), (bad, futures[1]), (good, futures[2])])
    assert futures[0].result().created
    assert futures[2].result().created
    with pytest.raises(ValueError, match="boom"):
        futures[1].result()
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 2


def test_work_after_stop_is_refused(db: Database) -> None:
    committer = GroupCommitter(db)
    committer.start()
    assert committer.run_sync(lambda s: 1) == 1
    committer.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        committer.run_sync(lambda s: 2)


def _scored(n: int, counts: dict[Any, int]) -> jobs_submission.ScoredSubmission:
    return jobs_submission.scored_submission(
        reports=[REPORT] * n,
        scores=[0.5] * n,
        owner="t",
        model_name="m",
        model_version="1",
        predict_ms=1.0,
        received_at=datetime.now(UTC),
        drift_counts=counts,
    )


def test_scored_jobs_of_one_group_are_stored_each_and_add_their_drift_counts_once(db: Database) -> None:
    window = datetime(2026, 1, 1, tzinfo=UTC)
    shared, own = ("1", window, "score", "3"), ("1", window, "popularity", "1")
    works = [_scored(2, {shared: 2}), _scored(3, {shared: 3, own: 1}), _scored(1, {shared: 1})]
    committer = GroupCommitter(db)
    futures: list[Future[Any]] = [Future() for _ in works]
    committer._commit(list(zip(works, futures, strict=True)))
    job_ids = [f.result() for f in futures]
    assert len(set(job_ids)) == 3
    with db.read() as s:
        reports = dict(s.execute(select(Job.id, Job.n_reports)).all())
        stored = {
            (v, w, f, b): n
            for v, w, f, b, n in s.execute(
                select(
                    DriftCount.model_version,
                    DriftCount.window_start,
                    DriftCount.feature,
                    DriftCount.bin,
                    DriftCount.count,
                )
            )
        }
    assert reports == dict(zip(job_ids, [2, 3, 1], strict=True))
    assert stored == {shared: 6, own: 1}


def test_only_the_writing_connection_checkpoints_at_the_configured_wal_size(settings: Settings) -> None:
    database = Database.from_settings(settings.model_copy(update={"sqlite_wal_autocheckpoint_pages": 5000}))
    try:
        with database.write() as s:
            assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 5000
        with database.read() as s:
            assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000  # SQLite's default
    finally:
        database.dispose()
