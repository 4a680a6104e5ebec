"""Online quality aggregates and the automatic rollback on PostgreSQL (its upserts and its advisory lock)."""

from __future__ import annotations

from pathlib import Path

from reportscore.storage.db import Database
from tests.unit import test_quality_metrics, test_quality_rollback


def test_metrics_and_corrections_on_postgresql(pg_db: Database) -> None:
    test_quality_metrics.test_metrics_from_outcomes_match_scikit_learn_and_a_correction_moves_counts(pg_db)


def test_windows_on_postgresql(pg_db: Database) -> None:
    test_quality_metrics.test_windows_versions_and_range(pg_db)


def test_rollback_policy_on_postgresql(pg_db: Database, tmp_path: Path) -> None:
    test_quality_rollback.test_a_worse_champion_is_rolled_back_once_with_its_reason_and_numbers(pg_db, tmp_path)


def test_migration_counts_earlier_outcomes_on_postgresql(pg_db: Database) -> None:
    test_quality_metrics.test_the_migration_counts_outcomes_recorded_before_it_as_recording_them_did(pg_db)
