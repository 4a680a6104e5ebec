"""Per-key rate limits: GCRA (a token bucket without a refill timer), in memory or atomically in Redis.

A key with ``rate`` requests/second and ``burst`` may send ``burst`` requests at once, then one every
``1/rate`` seconds. Embedded mode counts in the process; distributed mode counts in Redis with one Lua script, so
every API process shares the same budget. If Redis does not answer, the process falls back to its own count
(degraded, logged) rather than refusing requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    async def acquire(self, key_id: str, *, rate: float, burst: int) -> float | None:
        """Take one request from the key's budget: None when allowed, else seconds until the next is allowed."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """GCRA in this process (embedded mode, and the fallback while Redis is away)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}  # theoretical arrival time of the next request, per key
        self._lock = threading.Lock()

    def acquire_sync(self, key_id: str, *, rate: float, burst: int) -> float | None:
        interval = 1.0 / rate
        now = self._clock()
        with self._lock:
            tat = max(self._tat.get(key_id, now), now)
            new_tat = tat + interval
            allow_at = new_tat - burst * interval
            if now < allow_at:
                return allow_at - now
            self._tat[key_id] = new_tat
            if len(self._tat) > 100_000:  # forget keys whose budget is full again
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            return None

    async def acquire(self, key_id: str, *, rate: float, burst: int) -> float | None:
        return self.acquire_sync(key_id, rate=rate, burst=burst)

    async def close(self) -> None:
        return None


# KEYS[1]: the key's TAT (microseconds, Redis' own clock so API hosts' clocks don't matter)
# ARGV[1]: emission interval in microseconds, ARGV[2]: burst. Returns 0 (allowed) or microseconds to wait.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return allow_at - now
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"""


class RedisRateLimiter:
    """GCRA in Redis (distributed mode): one atomic script call per request, keys ``<prefix>:ratelimit:<key id>``."""

    def __init__(self, url: str, *, prefix: str, timeout_s: float = 0.5) -> None:
        import redis.asyncio

        self._client: Any = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._script = self._client.register_script(GCRA_SCRIPT)
        self._prefix = prefix
        self._fallback = MemoryRateLimiter()
        self._degraded = False

    async def acquire(self, key_id: str, *, rate: float, burst: int) -> float | None:
        import redis

        interval_us = max(1, round(1_000_000 / rate))
        try:
            wait_us = int(await self._script(keys=[f"{self._prefix}:ratelimit:{key_id}"], args=[interval_us, burst]))
        except (redis.RedisError, OSError) as exc:
            if not self._degraded:
                log.warning(
                    "rate limits: Redis unavailable, counting per process until it answers",
                    extra={"error": type(exc).__name__},
                )
                self._degraded = True
            return self._fallback.acquire_sync(key_id, rate=rate, burst=burst)
        if self._degraded:
            log.info("rate limits: Redis answers again, limits are shared across processes")
            self._degraded = False
        return None if wait_us <= 0 else wait_us / 1_000_000

    async def close(self) -> None:
        await self._client.aclose()
