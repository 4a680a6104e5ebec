"""Engines and session factories, built by the app factory (never at import).

SQLite gets two engines on the same file: writes begin ``BEGIN IMMEDIATE`` so a transaction that reads then
writes never fails with a stale snapshot, and reads begin deferred so they never wait for a writer (WAL).
PostgreSQL uses one pooled engine with pre-ping for both, bounded to the process's connection budget.

Everything that differs by database is decided here, once: the job writer of the dialect (carried by every session),
and the capabilities callers ask about (``migrates_at_start``, ``single_process``, ``batch_claims``), so no code
outside storage names a dialect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from reportscore.settings import Settings
from reportscore.storage.repositories.jobs.postgres_writer import PostgresJobWriter
from reportscore.storage.repositories.jobs.sqlite_writer import SqliteJobWriter
from reportscore.storage.repositories.jobs.writer import SESSION_KEY, JobWriter


class StoreBusy(sa_exc.OperationalError):
    """Every connection of this process's budget stayed in use for the whole pool timeout.

    An ``OperationalError``, so it is answered like any other store outage (``503`` with ``Retry-After``) and a
    worker retries the task, instead of surfacing as an unexpected error."""

    def __init__(self, max_connections: int, timeout_s: float) -> None:
        super().__init__(
            f"store busy: all {max_connections} connections of this process stayed in use for {timeout_s:g} s",
            None,
            ConnectionError("connection pool exhausted"),
        )


class _BudgetPool(QueuePool):
    """A fixed pool of ``pool_size`` connections (no overflow) whose checkout timeout raises ``StoreBusy``."""

    def _do_get(self) -> ConnectionPoolEntry:
        try:
            return super()._do_get()
        except sa_exc.TimeoutError:
            raise StoreBusy(self.size(), self._timeout) from None


class Database:
    """The store of one process: ``write()`` and ``read()`` give a session in one transaction."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        sqlite_busy_timeout_s: float = 10.0,
        sqlite_wal_autocheckpoint_pages: int = 16000,
        max_connections: int = 10,
        pool_timeout_s: float = 10.0,
        application_name: str = "reportscore",
    ) -> None:
        self.url = url
        embedded = make_url(url).get_backend_name() == "sqlite"
        self.migrates_at_start = embedded
        """The process that opens the store brings its schema to the latest migration at start (the embedded file
        belongs to that one process); otherwise ``reportscore migrate`` is run once per release beforehand."""
        self.single_process = embedded
        """This process is the store's only user, so whatever a previous process left leased (jobs, callbacks) was
        left by a dead process and can be released at start."""
        self.batch_claims = not embedded
        """A claim can lock and take other pending jobs without waiting for rows another worker holds (``FOR UPDATE
        SKIP LOCKED``): ``claim_jobs(extra_pending=...)`` is available."""
        writer: JobWriter = SqliteJobWriter() if embedded else PostgresJobWriter()  # chosen once, for every session
        if embedded:
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(
                url,
                sqlite_synchronous,
                sqlite_busy_timeout_s,
                writes=True,
                wal_autocheckpoint_pages=sqlite_wal_autocheckpoint_pages,
            )
            self.read_engine = _sqlite_engine(url, sqlite_synchronous, sqlite_busy_timeout_s, writes=False)
        else:
            # At most ``max_connections`` per process, all kept for reuse (no overflow: a connection above the pool
            # size would be closed on return, and opening one, a PostgreSQL backend fork then pre-ping, cost more
            # than the read that needed it). Opened on demand only, so an idle process holds few. A request that
            # waits longer than the pool timeout for one gets ``StoreBusy``.
            self.write_engine = create_engine(
                url,
                poolclass=_BudgetPool,
                pool_pre_ping=True,
                pool_size=max_connections,
                max_overflow=0,
                pool_timeout=pool_timeout_s,
                connect_args={"application_name": application_name},  # how pg_stat_activity names them
            )
            self.read_engine = self.write_engine
        info = {SESSION_KEY: writer}
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False, info=info)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False, info=info)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            settings.effective_database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout_s=settings.sqlite_busy_timeout_s,
            sqlite_wal_autocheckpoint_pages=settings.sqlite_wal_autocheckpoint_pages,
            max_connections=settings.database_max_connections,
            pool_timeout_s=settings.database_pool_timeout_s,
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


def _sqlite_engine(
    url: str, synchronous: str, busy_timeout_s: float, *, writes: bool, wal_autocheckpoint_pages: int | None = None
) -> Engine:
    """The writing engine (``BEGIN IMMEDIATE``; with ``wal_autocheckpoint_pages``, its commits checkpoint the WAL
    once it holds that many pages) or the reading one."""
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
        if wal_autocheckpoint_pages is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint_pages)}")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if writes else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Through SQLAlchemy, not the driver: a locked database must raise SQLAlchemy's OperationalError, which the
        # API answers with its 503.
        conn.exec_driver_sql(begin)

    return engine
