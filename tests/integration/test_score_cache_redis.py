"""The score cache's Redis tier on a real Redis: processes share scores by (model version, encoded row), and an
outage of Redis bypasses the cache without failing scoring."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY

from reportscore.scoring import cache as score_cache
from reportscore.scoring.cache import ScoreCache
from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.registry import ModelRegistry
from reportscore.settings import Settings
from tests.fakes import FakeModel, fake_serving_model
from tests.infra.throwaway import RedisServer

SCHEMA = FeatureSchema.default()


def reports(popularities: list[int]) -> dict[str, list[Any]]:
    n = len(popularities)
    return {
        "abuse_type": ["PRF"] * n,
        "report_text_len": [100 + i for i in range(n)],
        "profile_rating": [7.5] * n,
        "popularity": popularities,
        "lifetime_matches_created": [12] * n,
    }


def process_cache(url: str, prefix: str, *, size: int = 100) -> ScoreCache:
    settings = Settings(
        redis_url=url, redis_prefix=prefix, score_cache_size=size, score_cache_redis=True, score_cache_ttl_s=60
    )
    cache = score_cache.from_settings(settings)
    assert cache is not None
    return cache


def redis_hits() -> float:
    return REGISTRY.get_sample_value("reportscore_score_cache_hits_total", {"tier": "redis"}) or 0.0


def test_two_processes_share_scores_through_redis_keyed_by_version(redis_url_and_prefix: tuple[str, str]) -> None:
    url, prefix = redis_url_and_prefix
    first, second = process_cache(url, prefix), process_cache(url, prefix)
    model_a, model_b = FakeModel(), FakeModel()
    in_a = ModelRegistry(fake_serving_model(model_a, version="v1"), store=None, cache=first)  # type: ignore[arg-type]
    in_b = ModelRegistry(fake_serving_model(model_b, version="v1"), store=None, cache=second)  # type: ignore[arg-type]
    rows = reports([1, 3, 5])

    np.testing.assert_allclose(in_a.current.score(rows), [0.2, 0.6, 1.0])
    before = redis_hits()
    np.testing.assert_allclose(in_b.current.score(rows), [0.2, 0.6, 1.0])
    assert model_a.calls == [3]
    assert model_b.calls == []  # every score came from the other process, through Redis
    assert redis_hits() - before == 3
    assert len(second) == 3  # and is now in this process's memory too

    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:score:*"))
        assert len(keys) == 3
        assert all(0 < client.ttl(k) <= 60 for k in keys)

    # Another version shares nothing: the version is part of the key.
    other = FakeModel()
    in_b.swap(fake_serving_model(other, version="v2"))
    in_b.current.score(rows)
    assert other.calls == [3]
    first.close()
    second.close()


def test_a_redis_outage_bypasses_the_cache_without_failing_scoring(
    throwaway_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(score_cache, "REDIS_RETRY_AFTER_S", 0.0)  # try Redis again on the next call
    cache = process_cache(throwaway_redis.url, "outage", size=0)  # Redis only: every hit must come from it
    model = FakeModel()
    registry = ModelRegistry(fake_serving_model(model), store=None, cache=cache)  # type: ignore[arg-type]
    rows = reports([2, 4])
    registry.current.score(rows)
    registry.current.score(rows)
    assert model.calls == [2]  # the second call was answered by Redis

    def errors(op: str) -> float:
        return REGISTRY.get_sample_value("reportscore_score_cache_redis_errors_total", {"op": op}) or 0.0

    get_before, set_before = errors("get"), errors("set")
    throwaway_redis.kill()
    np.testing.assert_allclose(registry.current.score(rows), [0.4, 0.8])
    np.testing.assert_allclose(registry.current.score(reports([5])), [1.0])
    assert model.calls == [2, 2, 1]  # scored by the model while Redis is down
    assert errors("get") - get_before == 2
    assert errors("set") - set_before == 2

    throwaway_redis.start()
    throwaway_redis.wait_ready()
    registry.current.score(rows)  # stored again (the restarted Redis is empty)
    registry.current.score(rows)
    assert model.calls == [2, 2, 1, 2]
    cache.close()
