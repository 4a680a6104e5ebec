"""Migration 0007 moves every stored score out of ``reports`` into ``report_scores``: a database populated at 0006
(scored, pending and failed jobs; reviewed and unreviewed reports; outcome history) upgrades with every job,
report, score and outcome found again, on SQLite and on PostgreSQL; and downgrading puts the scores back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from reportscore.storage import migrate
from reportscore.storage.db import Database
from reportscore.storage.models import ReportScore
from reportscore.storage.models.base import UTCDateTime
from reportscore.storage.repositories import jobs as jobs_repo
from reportscore.storage.repositories import moderation as moderation_repo

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 8, 0, 0, 123456, tzinfo=UTC)

# The tables as migration 0006 left them (only the columns written here).
JOBS = sa.table(
    "jobs",
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("owner", sa.String),
    sa.column("n_reports", sa.Integer),
    sa.column("created_at", UTCDateTime()),
    sa.column("finished_at", UTCDateTime()),
    sa.column("attempts", sa.Integer),
    sa.column("model_name", sa.String),
    sa.column("model_version", sa.String),
)
REPORTS = sa.table(
    "reports",
    sa.column("id", sa.Integer),
    sa.column("job_id", sa.String),
    sa.column("owner", sa.String),
    sa.column("position", sa.Integer),
    sa.column("client_report_id", sa.String),
    sa.column("abuse_type", sa.String),
    sa.column("report_text_len", sa.Integer),
    sa.column("profile_rating", sa.Float),
    sa.column("popularity", sa.Integer),
    sa.column("lifetime_matches_created", sa.Integer),
    sa.column("score", sa.Float),
    sa.column("model_version", sa.String),
    sa.column("scored_at", UTCDateTime()),
    sa.column("review_outcome", sa.String),
    sa.column("reviewed_at", UTCDateTime()),
)
FEEDBACK = sa.table(
    "report_feedback",
    sa.column("report_id", sa.Integer),
    sa.column("owner", sa.String),
    sa.column("outcome", sa.String),
    sa.column("previous_outcome", sa.String),
    sa.column("reviewer", sa.String),
    sa.column("reviewed_at", UTCDateTime()),
    sa.column("recorded_at", UTCDateTime()),
    sa.column("model_name", sa.String),
    sa.column("model_version", sa.String),
    sa.column("score", sa.Float),
)


def _population() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """36 jobs of three tenants: SUCCESS with 3 scored reports, PENDING with 2 unscored, FAILURE with 1; every
    third scored report reviewed (some twice), with its outcome history."""
    jobs: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    feedback: list[dict[str, Any]] = []
    report_id = 0
    for n in range(36):
        status = ("SUCCESS", "PENDING", "FAILURE")[n % 3]
        owner = f"tenant-{n % 3 if n % 2 else 0}"
        n_reports = {"SUCCESS": 3, "PENDING": 2, "FAILURE": 1}[status]
        scored = status == "SUCCESS"
        jobs.append(
            {
                "id": f"job-{n:02d}",
                "status": status,
                "owner": owner,
                "n_reports": n_reports,
                "created_at": T0 + timedelta(seconds=n),
                "finished_at": None if status == "PENDING" else T0 + timedelta(seconds=n, milliseconds=5),
                "attempts": 0 if status == "PENDING" else 1,
                "model_name": "m" if scored else None,
                "model_version": f"1.{n % 2}.0" if scored else None,
            }
        )
        for position in range(n_reports):
            report_id += 1
            reviewed = scored and report_id % 3 == 0
            outcome = ("actioned", "dismissed")[report_id % 2] if reviewed else None
            reports.append(
                {
                    "id": report_id,
                    "job_id": f"job-{n:02d}",
                    "owner": owner,
                    "position": position,
                    "client_report_id": f"c-{report_id}" if report_id % 4 else None,
                    "abuse_type": ("MSG", "PRF")[report_id % 2],
                    "report_text_len": report_id,
                    "profile_rating": report_id / 8,
                    "popularity": report_id % 6,
                    "lifetime_matches_created": report_id * 3,
                    "score": (report_id * 37 % 100) / 100 if scored else None,
                    "model_version": f"1.{n % 2}.0" if scored else None,
                    "scored_at": T0 + timedelta(seconds=n, milliseconds=5) if scored else None,
                    "review_outcome": outcome,
                    "reviewed_at": T0 + timedelta(hours=1, seconds=report_id) if reviewed else None,
                }
            )
            if reviewed:
                history = ["dismissed", outcome] if report_id % 2 else [outcome]
                for i, each in enumerate(history):
                    feedback.append(
                        {
                            "report_id": report_id,
                            "owner": owner,
                            "outcome": each,
                            "previous_outcome": history[i - 1] if i else None,
                            "reviewer": "mod",
                            "reviewed_at": T0 + timedelta(hours=1, seconds=report_id),
                            "recorded_at": T0 + timedelta(hours=1, seconds=report_id, milliseconds=i),
                            "model_name": "m",
                            "model_version": f"1.{n % 2}.0",
                            "score": (report_id * 37 % 100) / 100,
                        }
                    )
    return jobs, reports, feedback


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    # PostgreSQL: a throwaway database of its own, with a unique name, dropped afterwards
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    db = Database(url)
    yield db
    db.dispose()


def _to(db: Database, revision: str, *, down: bool = False) -> None:
    cfg = migrate.alembic_config(db.url)
    with db.write_engine.connect() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
        conn.commit()


def _all(db: Database, query: str) -> list[tuple[Any, ...]]:
    with db.read_engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(query))]


def test_a_populated_database_keeps_every_job_report_score_and_outcome(database: Database) -> None:
    jobs, reports, feedback = _population()
    _to(database, "0006")
    with database.write_engine.begin() as conn:
        conn.execute(sa.insert(JOBS), jobs)
        conn.execute(sa.insert(REPORTS), reports)
        conn.execute(sa.insert(FEEDBACK), feedback)
    feature_sql = (
        "SELECT id, job_id, owner, position, client_report_id, abuse_type, report_text_len, profile_rating, "
        "popularity, lifetime_matches_created, review_outcome FROM reports ORDER BY id"
    )
    jobs_before = _all(database, "SELECT * FROM jobs ORDER BY id")
    reports_before = _all(database, feature_sql)
    feedback_before = _all(database, "SELECT * FROM report_feedback ORDER BY id")

    migrate.upgrade_to_head(database)

    assert migrate.is_at_head(database)
    assert _all(database, "SELECT * FROM jobs ORDER BY id") == jobs_before
    assert _all(database, feature_sql) == reports_before
    assert _all(database, "SELECT * FROM report_feedback ORDER BY id") == feedback_before
    scored = [r for r in reports if r["score"] is not None]
    assert len(scored) == 36  # 12 SUCCESS jobs of 3 reports
    with database.read() as session:
        rows = session.execute(
            sa.select(
                ReportScore.report_id,
                ReportScore.owner,
                ReportScore.score,
                ReportScore.model_version,
                ReportScore.scored_at,
                ReportScore.reviewed,
            )
        ).all()
        by_id = {r[0]: r for r in rows}
        assert sorted(by_id) == [r["id"] for r in scored]
        for r in scored:
            _, owner, score, version, scored_at, reviewed = by_id[r["id"]]
            assert (owner, score, version, scored_at, reviewed) == (
                r["owner"],
                r["score"],
                r["model_version"],
                r["scored_at"],
                r["review_outcome"] is not None,
            )
        # the task view reads every report of a job, scored or not, with its score from the new table
        for job in jobs:
            expected = [(r["id"], r["client_report_id"], r["score"]) for r in reports if r["job_id"] == job["id"]]
            assert [tuple(x) for x in jobs_repo.get_job_reports(session, job["id"])] == expected
        # the queue: each tenant's unreviewed scores, best first; reviewed reports are not in it
        for owner in ("tenant-0", "tenant-1", "tenant-2"):
            page = moderation_repo.queue_page(session, owner=owner, limit=100)
            expected_queue = sorted(
                ((-r["score"], r["id"]) for r in scored if r["owner"] == owner and r["review_outcome"] is None),
            )
            assert [(-row.score, row.id) for row in page] == expected_queue
        # a reviewed report's outcome and score are found by the feedback path
        reviewed_report = next(r for r in scored if r["review_outcome"] is not None)
        target = moderation_repo.feedback_target(
            session, owner=reviewed_report["owner"], report_id=reviewed_report["id"]
        )
        assert target is not None
        assert (target.review_outcome, target.score, target.model_version) == (
            reviewed_report["review_outcome"],
            reviewed_report["score"],
            reviewed_report["model_version"],
        )

    _to(database, "0006", down=True)
    restored = _all(database, "SELECT id, score, model_version FROM reports ORDER BY id")
    assert restored == [(r["id"], r["score"], r["model_version"]) for r in reports]
