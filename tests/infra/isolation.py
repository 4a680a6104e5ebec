"""Per-test-run isolation on the SHARED PostgreSQL, Redis and RabbitMQ on 127.0.0.1.

Those servers are shared by every test run on the machine (and by CI): never flush, restart or drop anything a test
did not create. Each run gets its own database (``rs_test_<hex>``), Redis key prefix and Celery queue names
(``rstest-<hex>``), and removes exactly those afterwards.
"""

from __future__ import annotations

import re
import uuid
from types import TracebackType
from typing import Any

import psycopg
import redis
from kombu.connection import Connection
from psycopg import sql
from sqlalchemy.engine import make_url

SHARED_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"
SHARED_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _psycopg_conninfo(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy) -> ``postgresql://...`` (libpq)."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def shared_postgres_available(admin_url: str = SHARED_PG_ADMIN_URL, *, timeout_s: float = 1.0) -> bool:
    """A real login (not just an open port) to the shared PostgreSQL, within ~``timeout_s``."""
    try:
        with psycopg.connect(_psycopg_conninfo(admin_url), connect_timeout=max(1, round(timeout_s))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def shared_redis_available(url: str = SHARED_REDIS_URL, *, timeout_s: float = 1.0) -> bool:
    """PING to the shared Redis within ``timeout_s``."""
    try:
        with redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s) as client:
            return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


def shared_rabbitmq_available(url: str = SHARED_AMQP_URL, *, timeout_s: float = 1.0) -> bool:
    """An AMQP login to the shared RabbitMQ within ~``timeout_s`` (no retries)."""
    try:
        with Connection(url, connect_timeout=timeout_s) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout_s)
    except Exception:  # kombu raises OperationalError, amqp its own errors, the socket OSError
        return False
    return True


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def unique_prefix() -> str:
    """A Redis key prefix / queue name prefix of its own for one test run: ``rstest-<8 hex>``."""
    return unique_name("rstest-")


class TempPostgresDatabase:
    """A uniquely named database on the shared server, dropped (``WITH (FORCE)``, PG >= 13) on exit.

    ``with TempPostgresDatabase() as url:`` yields its SQLAlchemy URL (``postgresql+psycopg://...``). Dispose your
    engines before exit; connections still open are terminated by the forced drop.
    """

    def __init__(self, admin_url: str = SHARED_PG_ADMIN_URL, *, prefix: str = "rs_test_") -> None:
        self.admin_url = admin_url
        self.name = unique_name(prefix)
        if not _DB_NAME.match(self.name):
            raise ValueError(f"not a plain lower-case database name: {self.name!r}")
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)
        self.created = False

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(_psycopg_conninfo(self.admin_url), autocommit=True, connect_timeout=5)

    def create(self) -> str:
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.created = True
        return self.url

    def drop(self) -> None:
        """Drop it (only the one this object created), even with sessions still connected."""
        if not self.created:
            return
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
        self.created = False

    def exists(self) -> bool:
        with self._admin() as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.name,)).fetchone()
        return row is not None

    def __enter__(self) -> str:
        return self.create()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.drop()


def _glob_escape(text: str) -> str:
    """Escape Redis glob-style pattern characters, so ``MATCH`` treats the prefix literally."""
    return re.sub(r"([\\*?\[\]^])", r"\\\1", text)


def cleanup_redis_prefix(url: str, prefix: str, *, batch: int = 500) -> int:
    """Delete the keys that start with ``prefix`` (``SCAN MATCH``, never ``FLUSH*``); return how many were deleted."""
    if not prefix:
        raise ValueError("an empty prefix would match every key on a shared server")
    deleted = 0
    with redis.Redis.from_url(url, socket_timeout=10.0, socket_connect_timeout=2.0) as client:
        pending: list[bytes] = []
        for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=batch):
            if not key.startswith(prefix.encode()):
                continue  # belt and braces: MATCH already filters
            pending.append(key)
            if len(pending) >= batch:
                deleted += int(client.delete(*pending))
                pending.clear()
        if pending:
            deleted += int(client.delete(*pending))
    return deleted


def delete_rabbitmq_queues(url: str, names: list[str], *, timeout_s: float = 5.0) -> None:
    """Delete the named queues (ours only); a queue that does not exist is not an error."""
    if not names:
        return
    with Connection(url, connect_timeout=timeout_s) as conn:  # type: ignore[no-untyped-call]
        conn.ensure_connection(max_retries=1, timeout=timeout_s)
        channel = conn.channel()
        try:
            for name in names:
                try:
                    channel.queue_delete(queue=name)
                except conn.channel_errors:  # older brokers close the channel on a missing queue: open a new one
                    channel = conn.channel()
        finally:
            channel.close()
