"""The test infrastructure itself: throwaway servers survive (or lose data on) kill/restart as documented, and the
per-run isolation on the shared services creates and removes exactly its own things."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
import redis
from kombu.connection import Connection
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import require
from tests.infra.fixtures import pg_url, redis_url_and_prefix, throwaway_postgres, throwaway_redis  # noqa: F401
from tests.infra.isolation import (
    SHARED_AMQP_URL,
    SHARED_PG_ADMIN_URL,
    SHARED_REDIS_URL,
    TempPostgresDatabase,
    cleanup_redis_prefix,
    delete_rabbitmq_queues,
    shared_postgres_available,
    shared_rabbitmq_available,
    shared_redis_available,
    unique_prefix,
)
from tests.infra.throwaway import PostgresServer, RedisServer, free_port, port_is_bindable, port_is_open


def _database_exists(name: str) -> bool:
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=5) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


# -- throwaway Redis --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_throwaway_redis_with_appendonly_keeps_data_across_restart() -> None:
    with RedisServer(appendonly=True) as server:
        port = server.port
        with server.client() as c:
            c.set("k", "v")
            c.rpush("jobs", "a", "b")
        server.restart()
        assert server.port == port
        assert server.url == f"redis://127.0.0.1:{port}/0"
        with redis.Redis.from_url(server.url, socket_timeout=5) as c:
            assert c.get("k") == b"v"
            assert c.lrange("jobs", 0, -1) == [b"a", b"b"]
        data_dir = server.dir
        assert (data_dir / "appendonlydir").is_dir()
    assert not data_dir.exists()
    assert not port_is_open(port)


@pytest.mark.slow
def test_throwaway_redis_without_persistence_loses_data_after_kill(throwaway_redis: RedisServer) -> None:  # noqa: F811
    server = throwaway_redis
    port, pid = server.port, server.pid
    with server.client() as c:
        c.set("k", "v")
    server.kill()
    assert not server.running
    assert not port_is_open(port)
    server.start()
    assert server.port == port
    assert server.pid != pid
    with server.client() as c:
        assert c.get("k") is None
        assert c.dbsize() == 0


# -- throwaway PostgreSQL ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_throwaway_postgres_keeps_committed_data_across_kill_9(throwaway_postgres: PostgresServer) -> None:  # noqa: F811
    server = throwaway_postgres
    port = server.port
    url = server.create_database("app")
    assert url == f"postgresql+psycopg://postgres@127.0.0.1:{port}/app"
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x int)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        # an open, uncommitted transaction when the server dies
        with server.connect("app") as pending:
            pending.execute("INSERT INTO t VALUES (2)")

            server.kill()
            assert not port_is_open(port)
            assert port_is_bindable(port)
            t0 = time.monotonic()
            server.start()  # crash recovery, same port
            recovery_s = time.monotonic() - t0
            with pytest.raises(psycopg.OperationalError):
                pending.execute("SELECT 1")  # its server is gone
        engine.dispose()  # its pooled connections died with the server
        assert server.port == port
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1]
    finally:
        engine.dispose()
    assert "automatic recovery in progress" in server.logs()
    assert recovery_s < 20


@pytest.mark.slow
def test_throwaway_postgres_frees_its_port_and_dir_after_stop() -> None:
    with PostgresServer() as server:
        port = server.port
        with server.connect() as conn:
            row = conn.execute("SHOW listen_addresses").fetchone()
            assert row == ("127.0.0.1",)
            row = conn.execute("SHOW fsync").fetchone()
            assert row == ("on",)
        server.stop()
        assert not server.running
        assert not port_is_open(port)
        assert port_is_bindable(port)
        server.restart()  # same port, same data
        assert server.port == port
        with server.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        tmp = server.dir
    assert not tmp.exists()
    assert not port_is_open(port)


# -- isolation on the shared services ---------------------------------------------------------------------------------


def test_availability_checks_are_quick_and_false_on_a_closed_port() -> None:
    port = free_port()
    t0 = time.monotonic()
    assert not shared_postgres_available(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
    assert not shared_redis_available(f"redis://127.0.0.1:{port}/0")
    assert not shared_rabbitmq_available(f"amqp://guest:guest@127.0.0.1:{port}//")
    assert time.monotonic() - t0 < 5


def test_temp_postgres_database_creates_and_drops_its_database() -> None:
    require(shared_postgres_available(), "PostgreSQL on 127.0.0.1:5432 is needed")
    temp = TempPostgresDatabase(SHARED_PG_ADMIN_URL)
    assert temp.name.startswith("rs_test_")
    assert not _database_exists(temp.name)
    engine = create_engine(temp.url)
    try:
        with temp as url:
            assert url == temp.url == f"postgresql+psycopg://postgres@127.0.0.1:5432/{temp.name}"
            assert _database_exists(temp.name)
            conn = engine.connect()  # still open at the drop, on purpose: the drop is forced
            conn.execute(text("CREATE TABLE t (x int)"))
            conn.commit()
        assert not _database_exists(temp.name)
        with pytest.raises(DBAPIError):
            conn.execute(text("SELECT 1"))
        conn.close()
    finally:
        engine.dispose()


def test_pg_url_fixture_gives_an_empty_database_of_its_own(pg_url: str) -> None:  # noqa: F811
    name = pg_url.rsplit("/", 1)[1]
    assert name.startswith("rs_test_")
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == name
            tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
            assert tables == 0
    finally:
        engine.dispose()


def test_cleanup_redis_prefix_deletes_only_prefixed_keys() -> None:
    require(shared_redis_available(), "Redis on 127.0.0.1:6379 is needed")
    prefix = unique_prefix()
    assert prefix.startswith("rstest-")
    assert len(prefix) == len("rstest-") + 8
    survivor = f"rstest-survivor-{uuid.uuid4().hex}"  # not under the prefix
    near_miss = f"{prefix[:-1]}{'0' if prefix[-1] != '0' else '1'}:x"  # shares all but the prefix's last char
    with redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=5) as c:
        try:
            with c.pipeline(transaction=False) as pipe:
                for i in range(1200):  # more than one SCAN batch and one DEL batch
                    pipe.set(f"{prefix}:k{i}", i, ex=600)  # TTL: gone by itself even if this test dies
                pipe.set(survivor, "keep", ex=600)
                pipe.set(near_miss, "keep", ex=600)
                pipe.execute()
            assert cleanup_redis_prefix(SHARED_REDIS_URL, prefix) == 1200
            assert c.get(survivor) == b"keep"
            assert c.get(near_miss) == b"keep"
            assert list(c.scan_iter(match=f"{prefix}*", count=1000)) == []
            assert cleanup_redis_prefix(SHARED_REDIS_URL, prefix) == 0
        finally:
            c.delete(survivor, near_miss)


def test_cleanup_redis_prefix_treats_glob_characters_literally() -> None:
    require(shared_redis_available(), "Redis on 127.0.0.1:6379 is needed")
    base = unique_prefix()
    prefix = f"{base}[*]"
    lookalike = f"{base}*other"  # matched by the unescaped pattern "<base>[*]*"
    with redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=5) as c:
        try:
            c.set(f"{prefix}:a", 1, ex=600)
            c.set(lookalike, 1, ex=600)
            assert cleanup_redis_prefix(SHARED_REDIS_URL, prefix) == 1
            assert c.exists(lookalike) == 1
        finally:
            c.delete(f"{prefix}:a", lookalike)
    with pytest.raises(ValueError, match="empty prefix"):
        cleanup_redis_prefix(SHARED_REDIS_URL, "")


def test_redis_url_and_prefix_fixture(redis_url_and_prefix: tuple[str, str]) -> None:  # noqa: F811
    url, prefix = redis_url_and_prefix
    assert url == "redis://127.0.0.1:6379/0"
    assert prefix.startswith("rstest-")
    with redis.Redis.from_url(url, socket_timeout=5) as c:
        c.set(f"{prefix}:left-behind", 1, ex=600)  # the fixture removes it


def test_delete_rabbitmq_queues_deletes_ours_and_ignores_missing_ones() -> None:
    require(shared_rabbitmq_available(), "RabbitMQ on 127.0.0.1:5672 is needed")
    prefix = unique_prefix()
    names = [f"{prefix}.celery", f"{prefix}.dead"]
    missing = f"{prefix}.never-declared"
    with Connection(SHARED_AMQP_URL, connect_timeout=5) as conn:  # type: ignore[no-untyped-call]
        try:
            channel = conn.channel()
            try:
                for name in names:
                    channel.queue_declare(queue=name, durable=True, auto_delete=False)
                    channel.basic_publish(channel.prepare_message(b"hello"), exchange="", routing_key=name)
                    assert channel.queue_declare(queue=name, passive=True).queue == name
            finally:
                channel.close()
            delete_rabbitmq_queues(SHARED_AMQP_URL, [*names, missing])
            for name in names:
                channel = conn.channel()
                try:
                    with pytest.raises(conn.channel_errors):
                        channel.queue_declare(queue=name, passive=True)
                finally:
                    channel.close()
        finally:
            delete_rabbitmq_queues(SHARED_AMQP_URL, names)
