"""Apply and inspect Alembic migrations programmatically (the CLI's ``migrate`` and ``serve`` use this)."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from reportscore.storage.db import Database

SCRIPT_LOCATION = "reportscore.storage:migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# Any constant works; it names the lock "reportscore migrations" among the server's advisory locks.
MIGRATION_LOCK_KEY = 0x5265_7073_636F  # "Repsco"


def upgrade_to_head(db: Database, *, then: Callable[[], object] | None = None) -> None:
    """Bring the schema to the latest migration (idempotent).

    On PostgreSQL a session advisory lock serialises concurrent ``reportscore migrate`` runs: the second waits,
    then finds nothing left to do. ``then`` runs while the lock is still held (first-run set-up that must happen
    once, such as registering the first champion).
    """
    cfg = alembic_config(db.url)
    with db.write_engine.connect() as conn:
        if not db.single_process:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
            if then is not None:
                then()
        finally:
            if not db.single_process:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.read_engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_at_head(db: Database) -> bool:
    return current_revision(db) == head_revision()
