"""A score cache at the model-call seam: scores by (model, encoded feature row).

The key is the serving model's identity (name, version and artifact sha256) and the exact bytes of the report's
encoded float32 row, so a promotion or a rollback can never be answered with another version's score: the other
version's entries simply do not match. ``predict`` looks every row up, calls the model on the misses only (one
call) and stores what it returned.

Two tiers: a bounded in-process LRU (``score_cache_size`` entries), and optionally Redis (``score_cache_redis``),
shared by every process of a distributed deployment, read with one MGET and written with one pipelined SET with a
TTL per model call. Redis is an optimisation only: any Redis error is logged, counted and the call goes on as a
miss, so scoring never fails or waits long because of it (short socket timeouts, then a pause before retrying).

Only scores that are finite and in 0..1 are stored: what the caller's checks would reject is never cached.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from reportscore.monitoring import metrics
from reportscore.settings import Settings

log = logging.getLogger(__name__)

Predict = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]
REDIS_TIMEOUT_S = 0.25
REDIS_RETRY_AFTER_S = 5.0
"""After a Redis error, the Redis tier is skipped for this long (scoring does not pay a timeout per call)."""
_DOUBLE = struct.Struct("<d")


class ScoreCache:
    """Scores by (model key, encoded row); thread-safe. ``redis`` is a redis-py client (or None: in-process only)."""

    def __init__(
        self,
        size: int,
        *,
        redis: Any = None,
        redis_prefix: str = "reportscore",
        ttl_s: int = 3600,
    ) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = size
        self._entries: OrderedDict[tuple[str, bytes], float] = OrderedDict()
        self._lock = threading.Lock()
        self._redis = redis
        self._redis_prefix = f"{redis_prefix}:score:"
        self._ttl_s = ttl_s
        self._redis_paused_until = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def predict(self, model_key: str, matrix: npt.NDArray[np.float32], predict: Predict) -> npt.NDArray[np.float64]:
        """The model's scores for ``matrix``: cached ones looked up, the rest from one ``predict`` call."""
        n = matrix.shape[0]
        if n == 0:
            return predict(matrix)
        rows = np.ascontiguousarray(matrix)
        width = rows.shape[1] * rows.itemsize
        buf = rows.tobytes()
        keys = [buf[i : i + width] for i in range(0, n * width, width)]
        found = self._memory_get(model_key, keys)
        memory_hits = n - found.count(None)
        redis_hits = 0
        if self._redis is not None and memory_hits < n:
            redis_found = self._redis_get(model_key, [k for k, v in zip(keys, found, strict=True) if v is None])
            if redis_found:
                it = iter(redis_found)
                found = [v if v is not None else next(it) for v in found]
                redis_hits = sum(v is not None for v in redis_found)
                self._memory_put(model_key, [(k, v) for k, v in zip(keys, found, strict=True) if v is not None])
        miss_idx = [i for i, v in enumerate(found) if v is None]
        metrics.observe_score_cache(hits={"memory": memory_hits, "redis": redis_hits}, misses=len(miss_idx))
        if not miss_idx:
            return np.asarray(found, dtype=np.float64)
        if len(miss_idx) == n:
            scores = predict(rows)
            self._fill(model_key, keys, scores)
            return scores
        missed = predict(rows[miss_idx])
        if missed.shape != (len(miss_idx),):
            return missed  # the caller's shape check reports the model's answer as it is
        self._fill(model_key, [keys[i] for i in miss_idx], missed)
        out = np.asarray([0.0 if v is None else v for v in found], dtype=np.float64)
        out[miss_idx] = missed
        return out

    # --- the in-process tier ------------------------------------------------------------------------------------
    def _memory_get(self, model_key: str, keys: list[bytes]) -> list[float | None]:
        if self.size == 0:
            return [None] * len(keys)
        out: list[float | None] = []
        append = out.append
        with self._lock:
            get, to_end = self._entries.get, self._entries.move_to_end
            for k in keys:
                full = (model_key, k)
                v = get(full)
                if v is not None:
                    to_end(full)
                append(v)
        return out

    def _memory_put(self, model_key: str, items: list[tuple[bytes, float]]) -> None:
        if self.size == 0 or not items:
            return
        with self._lock:
            entries = self._entries
            for k, v in items:
                entries[(model_key, k)] = v  # a new key goes last; an existing one keeps its place (same score)
            excess = len(entries) - self.size
            pop = entries.popitem
            for _ in range(excess):
                pop(last=False)
            n = len(entries)
        metrics.set_score_cache_entries(n)

    def _fill(self, model_key: str, keys: list[bytes], scores: npt.NDArray[np.float64]) -> None:
        if scores.shape != (len(keys),):
            return
        values = scores.tolist()
        items = [(k, float(v)) for k, v in zip(keys, values, strict=True) if 0.0 <= v <= 1.0]  # NaN fails both
        self._memory_put(model_key, items)
        if self._redis is not None and items:
            self._redis_set(model_key, items)

    # --- the Redis tier -----------------------------------------------------------------------------------------
    def _redis_key(self, model_key: str, row: bytes) -> bytes:
        return f"{self._redis_prefix}{model_key}:".encode() + row.hex().encode()

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_paused_until

    def _redis_failed(self, op: str) -> None:
        self._redis_paused_until = time.monotonic() + REDIS_RETRY_AFTER_S
        metrics.observe_score_cache_redis_error(op)
        log.warning("score cache: Redis %s failed; scoring goes on without it", op, exc_info=True)

    def _redis_get(self, model_key: str, keys: list[bytes]) -> list[float | None] | None:
        if not keys or not self._redis_usable():
            return None
        try:
            raw = self._redis.mget([self._redis_key(model_key, k) for k in keys])
        except Exception:
            self._redis_failed("get")
            return None
        out: list[float | None] = []
        for value in raw:
            out.append(_DOUBLE.unpack(value)[0] if isinstance(value, bytes) and len(value) == 8 else None)
        return out

    def _redis_set(self, model_key: str, items: list[tuple[bytes, float]]) -> None:
        if not self._redis_usable():
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for k, v in items:
                pipe.set(self._redis_key(model_key, k), _DOUBLE.pack(v), ex=self._ttl_s)
            pipe.execute()
        except Exception:
            self._redis_failed("set")

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def model_key(name: str, version: str, sha256: str) -> str:
    """The part of every key that names the model: two versions, or two artifacts, never share an entry."""
    return f"{name}:{version}:{sha256[:16]}"


def from_settings(settings: Settings) -> ScoreCache | None:
    """The process's score cache as configured (None when ``score_cache_size`` is 0 and Redis is off)."""
    redis_client: Any = None
    if settings.score_cache_redis:
        url = settings.effective_redis_url
        if url is None:
            raise ValueError("REPORTSCORE_SCORE_CACHE_REDIS needs REPORTSCORE_REDIS_URL (or a Redis broker URL)")
        import redis

        redis_client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            **settings.redis_tls_options(url),
        )
    if settings.score_cache_size == 0 and redis_client is None:
        return None
    return ScoreCache(
        settings.score_cache_size,
        redis=redis_client,
        redis_prefix=settings.redis_prefix,
        ttl_s=settings.score_cache_ttl_s,
    )
