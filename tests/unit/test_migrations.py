"""The schema comes from Alembic migrations, and the ORM models agree with them."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from reportscore.storage import migrate
from reportscore.storage.db import Database
from reportscore.storage.models import Base


def test_migrations_reach_head_and_match_the_models(db: Database) -> None:
    assert migrate.is_at_head(db)
    with db.read_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_downgrade_works(db: Database) -> None:
    migrate.upgrade_to_head(db)  # second run changes nothing
    assert migrate.is_at_head(db)
    cfg = migrate.alembic_config(db.url)
    with db.write_engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        conn.commit()
    assert set(inspect(db.read_engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade_to_head(db)
    assert {"jobs", "reports"} <= set(inspect(db.read_engine).get_table_names())


def test_sqlite_runs_in_wal_with_full_sync(db: Database) -> None:
    with db.read_engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
