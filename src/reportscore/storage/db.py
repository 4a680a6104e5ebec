"""Engines and session factories, built by the app factory (never at import).

SQLite gets two engines on the same file: writes begin ``BEGIN IMMEDIATE`` so a transaction that reads then
writes never fails with a stale snapshot, and reads begin deferred so they never wait for a writer (WAL).
PostgreSQL uses one pooled engine with pre-ping for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from reportscore.settings import Settings


class Database:
    """The store of one process: ``write()`` and ``read()`` give a session in one transaction."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        sqlite_busy_timeout_s: float = 10.0,
        pg_pool_size: int = 40,
    ) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(url, sqlite_synchronous, sqlite_busy_timeout_s, immediate=True)
            self.read_engine = _sqlite_engine(url, sqlite_synchronous, sqlite_busy_timeout_s, immediate=False)
        else:
            # As many pooled connections as the API's request threads (anyio's default limit: 40) can use at once:
            # a connection above ``pool_size`` is closed when returned, and opening one (a PostgreSQL backend
            # fork, then pre-ping) cost more than the read that needed it when every long-poll's first read came
            # at once. Connections are opened on demand only, so an idle process holds few.
            self.write_engine = create_engine(url, pool_pre_ping=True, pool_size=pg_pool_size, max_overflow=10)
            self.read_engine = self.write_engine
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            settings.effective_database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout_s=settings.sqlite_busy_timeout_s,
            pg_pool_size=settings.database_pool_size,
        )

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: commits when the block ends, rolls back on an exception."""
        with self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """One read-only transaction."""
        with self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """One read-only transaction on a plain connection (no ORM session: for the hottest reads)."""
        with self.read_engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


def _sqlite_engine(url: str, synchronous: str, busy_timeout_s: float, *, immediate: bool) -> Engine:
    # Enough pooled connections for every request thread: an overflow connection is closed on return, and opening
    # one (with its PRAGMAs) was a visible share of a GET /task in the benchmark profile.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
        pool_size=16,
        max_overflow=48,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (pysqlite's own is broken)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
