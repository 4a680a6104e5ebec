"""pytest fixtures for tests that talk to real services. Import them into a conftest::

    from tests.infra.fixtures import pg_url, redis_url_and_prefix, throwaway_postgres, throwaway_redis  # noqa: F401

``s3_server`` is a moto S3 server for the whole session (each test makes its own bucket).
``pg_url`` and ``redis_url_and_prefix`` isolate a test on the SHARED servers (own database, own key prefix, removed
afterwards); ``pg_db`` is a migrated ``Database`` on ``pg_url``. ``throwaway_redis`` and ``throwaway_postgres``
start a private server that the test may kill or restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from reportscore.storage import migrate
from reportscore.storage.db import Database
from tests.conftest import require
from tests.infra.isolation import (
    SHARED_PG_ADMIN_URL,
    SHARED_REDIS_URL,
    TempPostgresDatabase,
    cleanup_redis_prefix,
    shared_postgres_available,
    shared_redis_available,
    unique_prefix,
)
from tests.infra.s3server import S3Server
from tests.infra.throwaway import PostgresServer, RedisServer

if TYPE_CHECKING:
    from tests.infra.netlab import NetLab


@pytest.fixture
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh database ``rs_test_<hex>`` on the shared PostgreSQL, dropped afterwards."""
    require(shared_postgres_available(), "PostgreSQL on 127.0.0.1:5432 is needed")
    with TempPostgresDatabase(SHARED_PG_ADMIN_URL) as url:
        yield url


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    """A ``Database`` on ``pg_url``, migrated to the latest revision."""
    database = Database(pg_url)
    migrate.upgrade_to_head(database)
    yield database
    database.dispose()


@pytest.fixture
def redis_url_and_prefix() -> Iterator[tuple[str, str]]:
    """``(url, prefix)`` on the shared Redis; every key starting with ``prefix`` is deleted afterwards."""
    require(shared_redis_available(), "Redis on 127.0.0.1:6379 is needed")
    prefix = unique_prefix()
    try:
        yield SHARED_REDIS_URL, prefix
    finally:
        cleanup_redis_prefix(SHARED_REDIS_URL, prefix)


@pytest.fixture
def throwaway_redis() -> Iterator[RedisServer]:
    """A private ``redis-server`` (no persistence) on a free port; the test may kill or restart it."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def throwaway_postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster on a free port; the test may kill or restart it."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on a free port for the session; tests isolate themselves with ``new_bucket()``."""
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def host_lab() -> Iterator[NetLab]:
    """Network hosts for one test module (``tests.infra.hosts.LAYOUT``: PostgreSQL, Redis, two API hosts, three
    worker hosts, a load generator), each a network namespace; all removed afterwards, also after a failure.
    Skipped where namespaces cannot be made (not root, no ``ip``); required under ``CI=true``."""
    from tests.infra.hosts import LAYOUT, NETWORKS
    from tests.infra.netlab import NetLab, probe

    why_not = probe()
    require(why_not is None, f"network namespaces are needed for the multi-host tests: {why_not}")
    with NetLab(NETWORKS, LAYOUT) as lab:
        yield lab
