"""The group committer: a failing work item does not sink the others of its group; after stop, work is refused;
scored jobs of one group are written together. The embedded writer's own pragmas."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
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
from reportscore.storage.models import DriftCount, Job, JobStatus, Report, ReportScore

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


def test_submissions_of_one_group_get_their_own_reports_ids_in_order(db: Database) -> None:
    sizes = [2, 1, 3]
    works = [
        jobs_submission.submission(
            reports=[{**REPORT, "report_text_len": 10 * j + i} for i in range(n)],
            owner=f"t{j}",
            idempotency_key=None,
            ttl_s=60,
            callback_url=f"https://example.test/{j}" if j == 1 else None,
        )
        for j, n in enumerate(sizes)
    ]
    futures: list[Future[Any]] = [Future() for _ in works]
    GroupCommitter(db)._commit(list(zip(works, futures, strict=True)))
    submitted = [f.result() for f in futures]
    assert all(s.created for s in submitted)
    with db.read() as s:
        for j, done in enumerate(submitted):
            job = s.get(Job, done.job_id)
            assert job is not None
            assert (job.status, job.owner, job.n_reports) == (JobStatus.PENDING, f"t{j}", sizes[j])
            assert job.callback_url == (f"https://example.test/{j}" if j == 1 else None)
            stored = s.execute(
                select(Report.id, Report.position, Report.report_text_len, Report.owner)
                .where(Report.job_id == done.job_id)
                .order_by(Report.position)
            ).all()
            # the ids handed back are the stored rows' ids, in report order
            assert done.report_ids == [r.id for r in stored]
            assert [(r.position, r.report_text_len, r.owner) for r in stored] == [
                (i, 10 * j + i, f"t{j}") for i in range(sizes[j])
            ]


def test_work_after_stop_is_refused(db: Database) -> None:
    committer = GroupCommitter(db)
    committer.start()
    assert committer.run_sync(lambda s: 1) == 1
    committer.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        committer.run_sync(lambda s: 2)


WINDOW = datetime(2026, 1, 1, tzinfo=UTC)


class PopularityCounter:
    """Counts reports by popularity and score into one window, and remembers what it was asked to count."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.calls: list[tuple[list[int], list[float]]] = []

    def __call__(
        self, columns: Mapping[str, Sequence[Any]], scores: Sequence[float], scored_at: datetime
    ) -> dict[Any, int]:
        self.calls.append((list(columns["popularity"]), list(scores)))
        counts: Counter[Any] = Counter((self.version, WINDOW, "popularity", str(p)) for p in columns["popularity"])
        counts.update((self.version, WINDOW, "score", str(round(s))) for s in scores)
        return dict(counts)


def _scored(
    version: str, popularity: list[int], counter: PopularityCounter, owner: str = "t"
) -> jobs_submission.ScoredSubmission:
    return jobs_submission.scored_submission(
        reports=[{**REPORT, "popularity": p} for p in popularity],
        scores=[p / 5 for p in popularity],
        owner=owner,
        model_name="m",
        model_version=version,
        predict_ms=1.0,
        received_at=datetime.now(UTC),
        count_drift=counter,
    )


def _commit_group(db: Database, works: list[jobs_submission.ScoredSubmission]) -> list[str]:
    futures: list[Future[Any]] = [Future() for _ in works]
    GroupCommitter(db)._commit(list(zip(works, futures, strict=True)))
    return [f.result() for f in futures]


def test_scored_jobs_of_one_group_are_stored_each_and_their_drift_counted_once_per_version(db: Database) -> None:
    one, two = PopularityCounter("1"), PopularityCounter("2")
    works = [_scored("1", [1, 2], one), _scored("2", [5], two, owner="u"), _scored("1", [2, 2, 4], one)]
    job_ids = _commit_group(db, works)
    assert len(set(job_ids)) == 3
    # one count per version over its jobs' reports together, in job order
    assert one.calls == [([1, 2, 2, 2, 4], [0.2, 0.4, 0.4, 0.4, 0.8])]
    assert two.calls == [([5], [1.0])]
    with db.read() as s:
        jobs = {j.id: (j.n_reports, j.owner, j.model_version, j.status) for j in s.scalars(select(Job))}
        rows = s.execute(
            select(Report.job_id, Report.popularity, ReportScore.score, ReportScore.model_version, ReportScore.owner)
            .join(ReportScore, ReportScore.report_id == Report.id)
            .order_by(Report.job_id, Report.position)
        ).all()
    assert jobs == {
        job_ids[0]: (2, "t", "1", JobStatus.SUCCESS),
        job_ids[1]: (1, "u", "2", JobStatus.SUCCESS),
        job_ids[2]: (3, "t", "1", JobStatus.SUCCESS),
    }
    # each report carries its own score, version and owner, whatever the order its job had in the group
    by_job: dict[str, list[tuple[int, float, str | None, str]]] = {}
    for job_id, popularity, score, version, owner in rows:
        by_job.setdefault(job_id, []).append((popularity, score, version, owner))
    assert by_job == {
        job_ids[0]: [(1, 0.2, "1", "t"), (2, 0.4, "1", "t")],
        job_ids[1]: [(5, 1.0, "2", "u")],
        job_ids[2]: [(2, 0.4, "1", "t"), (2, 0.4, "1", "t"), (4, 0.8, "1", "t")],
    }
    expected = {
        ("1", "popularity", "1"): 1,
        ("1", "popularity", "2"): 3,
        ("1", "popularity", "4"): 1,
        ("1", "score", "0"): 4,
        ("1", "score", "1"): 1,
        ("2", "popularity", "5"): 1,
        ("2", "score", "1"): 1,
    }
    assert _drift(db) == expected
    # a second group adds to the stored bins
    _commit_group(db, [_scored("2", [5, 1], two)])
    assert _drift(db) == {
        **expected,
        ("2", "popularity", "5"): 2,
        ("2", "popularity", "1"): 1,
        ("2", "score", "1"): 2,
        ("2", "score", "0"): 1,
    }


def _drift(db: Database) -> dict[tuple[str, str, str], int]:
    with db.read() as s:
        return {
            (v, f, b): n
            for v, f, b, n in s.execute(
                select(DriftCount.model_version, DriftCount.feature, DriftCount.bin, DriftCount.count)
            )
        }


def test_a_job_with_scores_not_matching_its_reports_is_refused(db: Database) -> None:
    work = jobs_submission.scored_submission(
        reports=[REPORT, REPORT],
        scores=[0.5],
        owner="t",
        model_name="m",
        model_version="1",
        predict_ms=1.0,
        received_at=datetime.now(UTC),
    )
    with pytest.raises(ValueError, match="1 scores for 2 reports"), db.write() as session:
        work(session)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_a_scored_job_alone_counts_its_own_drift(db: Database) -> None:
    counter = PopularityCounter("1")
    with db.write() as session:
        jobs_submission.scored_submission(
            reports=[REPORT],
            scores=[0.9],
            owner="t",
            model_name="m",
            model_version="1",
            predict_ms=1.0,
            received_at=datetime.now(UTC),
            count_drift=counter,
        )(session)
    assert counter.calls == [([1], [0.9])]
    with db.read() as s:
        assert s.scalar(select(func.sum(DriftCount.count))) == 2  # one popularity bin, one score bin


def test_only_the_writing_connection_checkpoints_at_the_configured_wal_size(settings: Settings) -> None:
    database = Database.from_settings(settings.model_copy(update={"sqlite_wal_autocheckpoint_pages": 5000}))
    try:
        with database.write() as s:
            assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 5000
        with database.read() as s:
            assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000  # SQLite's default
    finally:
        database.dispose()
