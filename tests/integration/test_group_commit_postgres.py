"""Jobs committed as a group on PostgreSQL (submitted and scored): each job's rows and the drift UPSERT, as on
SQLite."""

from __future__ import annotations

from reportscore.storage.db import Database
from tests.unit import test_group_commit


def test_a_group_of_scored_jobs_on_postgresql(pg_db: Database) -> None:
    test_group_commit.test_scored_jobs_of_one_group_are_stored_each_and_their_drift_counted_once_per_version(pg_db)


def test_mismatched_scores_on_postgresql(pg_db: Database) -> None:
    test_group_commit.test_a_job_with_scores_not_matching_its_reports_is_refused(pg_db)


def test_a_group_of_submissions_on_postgresql(pg_db: Database) -> None:
    test_group_commit.test_submissions_of_one_group_get_their_own_reports_ids_in_order(pg_db)
