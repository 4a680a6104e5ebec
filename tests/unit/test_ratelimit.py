"""GCRA in memory, and the per-process fallback when Redis does not answer."""

from __future__ import annotations

import asyncio

import pytest

from reportscore.security.ratelimit import MemoryRateLimiter, RedisRateLimiter
from tests.servers import free_port


def test_memory_limiter_allows_a_burst_then_one_per_interval() -> None:
    now = [100.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    assert [limiter.acquire_sync("k", rate=2, burst=3) for _ in range(3)] == [None, None, None]
    assert limiter.acquire_sync("k", rate=2, burst=3) == pytest.approx(0.5)
    assert limiter.acquire_sync("other", rate=2, burst=3) is None  # budgets are per key
    now[0] += 0.5
    assert limiter.acquire_sync("k", rate=2, burst=3) is None
    assert limiter.acquire_sync("k", rate=2, burst=3) == pytest.approx(0.5)


def test_redis_limiter_counts_per_process_while_redis_is_down() -> None:
    async def run() -> list[float | None]:
        limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", prefix="rstest-down", timeout_s=0.2)
        try:
            return [await limiter.acquire("k", rate=1, burst=2) for _ in range(3)]
        finally:
            await limiter.close()

    first, second, third = asyncio.run(run())
    assert first is None
    assert second is None
    assert third is not None
    assert 0 < third <= 1
