"""Integration tests run against real PostgreSQL, Redis and RabbitMQ (shared ones, isolated per test, or
throwaway servers the test may kill)."""

from tests.infra.fixtures import pg_db, pg_url, redis_url_and_prefix, s3_server, throwaway_postgres, throwaway_redis

__all__ = ["pg_db", "pg_url", "redis_url_and_prefix", "s3_server", "throwaway_postgres", "throwaway_redis"]
