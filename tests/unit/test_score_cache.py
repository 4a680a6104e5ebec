"""The score cache at the model-call seam: hits skip the model, the LRU stays bounded, and the model version is part
of every key, so a promotion or a rollback never answers with another version's score."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from reportscore.jobs import submission as jobs_submission
from reportscore.scoring.cache import ScoreCache, from_settings
from reportscore.scoring.features import FeatureSchema, FloatMatrix
from reportscore.scoring.formats.base import Scores
from reportscore.scoring.registry import ModelRegistry
from reportscore.scoring.service import score_jobs
from reportscore.settings import Settings
from reportscore.storage.db import Database
from tests.fakes import FakeModel, fake_serving_model

SCHEMA = FeatureSchema.default()


def reports(popularities: list[int], *, text_len: int = 10) -> dict[str, list[Any]]:
    n = len(popularities)
    return {
        "abuse_type": ["MSG"] * n,
        "report_text_len": [text_len + i for i in range(n)],
        "profile_rating": [5.0] * n,
        "popularity": popularities,
        "lifetime_matches_created": [3] * n,
    }


class InvertedModel(FakeModel):
    """Another version: 1 - popularity / 5 (differs from FakeModel on every row but popularity 2.5)."""

    def predict(self, matrix: FloatMatrix) -> Scores:
        return 1.0 - super().predict(matrix)


class CountingPredict:
    def __init__(self) -> None:
        self.rows: list[int] = []

    def __call__(self, matrix: FloatMatrix) -> Scores:
        self.rows.append(matrix.shape[0])
        return matrix[:, SCHEMA.names.index("popularity")].astype(np.float64) / 5.0


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_repeated_rows_are_answered_without_the_model_and_only_misses_are_predicted() -> None:
    cache = ScoreCache(100)
    predict = CountingPredict()
    first = SCHEMA.encode(reports([1, 2, 3]))
    hits_before = sample("reportscore_score_cache_hits_total", {"tier": "memory"})
    misses_before = sample("reportscore_score_cache_misses_total")

    np.testing.assert_allclose(cache.predict("m:1", first, predict), [0.2, 0.4, 0.6])
    assert predict.rows == [3]
    np.testing.assert_allclose(cache.predict("m:1", first, predict), [0.2, 0.4, 0.6])
    assert predict.rows == [3]  # all three from the cache

    # A mix keeps the caller's row order: cached rows around one new row, which alone reaches the model.
    mixed = np.vstack([first[2], SCHEMA.encode(reports([5], text_len=99))[0], first[0]])
    np.testing.assert_allclose(cache.predict("m:1", mixed, predict), [0.6, 1.0, 0.2])
    assert predict.rows == [3, 1]
    assert len(cache) == 4
    assert sample("reportscore_score_cache_hits_total", {"tier": "memory"}) - hits_before == 5
    assert sample("reportscore_score_cache_misses_total") - misses_before == 4


def test_the_cache_is_a_bounded_lru() -> None:
    cache = ScoreCache(2)
    predict = CountingPredict()
    a, b, c = (SCHEMA.encode(reports([p], text_len=p))[0:1] for p in (1, 2, 3))
    cache.predict("m:1", a, predict)
    cache.predict("m:1", b, predict)
    cache.predict("m:1", a, predict)  # a is now the most recently used
    cache.predict("m:1", c, predict)  # evicts b
    assert len(cache) == 2
    assert predict.rows == [1, 1, 1]
    cache.predict("m:1", a, predict)
    assert predict.rows == [1, 1, 1]
    cache.predict("m:1", b, predict)
    assert predict.rows == [1, 1, 1, 1]
    assert len(cache) == 2
    assert sample("reportscore_score_cache_entries") == 2


def test_a_promotion_and_a_rollback_never_return_another_versions_score() -> None:
    cache = ScoreCache(1000)
    v1 = fake_serving_model(FakeModel(), version="v1")
    v2 = fake_serving_model(InvertedModel(), version="v2")
    registry = ModelRegistry(v1, store=None, cache=cache)  # type: ignore[arg-type]
    rows = reports([0, 1, 4])  # identical rows for every version

    np.testing.assert_allclose(registry.current.score(rows), [0.0, 0.2, 0.8])
    registry.swap(v2)  # promotion
    np.testing.assert_allclose(registry.current.score(rows), [1.0, 0.8, 0.2])
    np.testing.assert_allclose(registry.current.score(rows), [1.0, 0.8, 0.2])  # v2's own cached scores
    registry.swap(v1)  # rollback
    np.testing.assert_allclose(registry.current.score(rows), [0.0, 0.2, 0.8])
    assert registry.current.cache is cache
    assert len(cache) == 6


def test_the_same_version_with_another_artifact_does_not_share_entries() -> None:
    cache = ScoreCache(1000)
    rows = reports([1])
    old = fake_serving_model(FakeModel(), version="v1")
    rebuilt = fake_serving_model(InvertedModel(), version="v1")
    object.__setattr__(rebuilt, "sha256", "f" * 64)
    registry = ModelRegistry(old, store=None, cache=cache)  # type: ignore[arg-type]
    np.testing.assert_allclose(registry.current.score(rows), [0.2])
    registry.swap(rebuilt)
    np.testing.assert_allclose(registry.current.score(rows), [0.8])


def test_scores_the_checks_would_reject_are_not_cached() -> None:
    cache = ScoreCache(100)
    model = fake_serving_model(FakeModel(nan=True))
    registry = ModelRegistry(model, store=None, cache=cache)  # type: ignore[arg-type]
    fake = registry.current.model
    assert isinstance(fake, FakeModel)
    rows = reports([1, 2])
    assert np.isnan(registry.current.score(rows)).all()
    assert np.isnan(registry.current.score(rows)).all()
    assert fake.calls == [2, 2]
    assert len(cache) == 0


def test_a_model_answer_of_the_wrong_shape_reaches_the_caller_unchanged() -> None:
    cache = ScoreCache(100)
    predict = CountingPredict()
    cache.predict("m:1", SCHEMA.encode(reports([1])), predict)

    def short(matrix: FloatMatrix) -> Scores:
        return np.zeros(matrix.shape[0] - 1)

    answer = cache.predict("m:1", SCHEMA.encode(reports([1, 2, 3])), short)
    assert answer.shape == (1,)  # two misses, one score: the service's shape check rejects it
    assert len(cache) == 1


class BrokenRedis:
    def __init__(self) -> None:
        self.calls = 0

    def mget(self, keys: list[bytes]) -> list[bytes | None]:
        self.calls += 1
        raise ConnectionError("redis is down")

    def pipeline(self, transaction: bool = True) -> Any:
        self.calls += 1
        raise ConnectionError("redis is down")


def test_a_failing_redis_tier_is_counted_and_bypassed() -> None:
    broken = BrokenRedis()
    cache = ScoreCache(0, redis=broken)
    predict = CountingPredict()
    errors_before = sample("reportscore_score_cache_redis_errors_total", {"op": "get"})
    matrix = SCHEMA.encode(reports([1, 2]))
    np.testing.assert_allclose(cache.predict("m:1", matrix, predict), [0.2, 0.4])
    np.testing.assert_allclose(cache.predict("m:1", matrix, predict), [0.2, 0.4])
    assert predict.rows == [2, 2]
    assert sample("reportscore_score_cache_redis_errors_total", {"op": "get"}) - errors_before == 1
    assert broken.calls == 1  # paused after the failure: no timeout paid per model call


def test_settings_build_the_cache_or_none() -> None:
    assert from_settings(Settings(score_cache_size=0)) is None
    cache = from_settings(Settings(score_cache_size=10))
    assert cache is not None
    assert cache.size == 10
    with pytest.raises(ValueError, match="SCORE_CACHE_REDIS"):
        Settings(score_cache_redis=True)


def test_queued_jobs_score_through_the_cache_and_a_promotion_rescores(db: Database) -> None:
    cache = ScoreCache(1000)
    v1_model, v2_model = FakeModel(), InvertedModel()
    registry = ModelRegistry(fake_serving_model(v1_model, version="v1"), store=None, cache=cache)  # type: ignore[arg-type]
    same = [report(1), report(4, "PRF")]

    def scored(reports: list[dict[str, Any]]) -> list[float | None]:
        job_id = jobs_submission.submit_job(
            db=db, reports=reports, owner="t", idempotency_key=None, idempotency_ttl_s=60
        ).job_id
        outcome = score_jobs(db=db, model=registry.current, job_ids=[job_id])
        assert outcome.succeeded == [job_id]
        view_reports = outcome.views[job_id].reports
        assert view_reports is not None
        return [r.score for r in view_reports]

    assert scored(same) == pytest.approx([0.2, 0.8])
    assert scored([*same, report(5)]) == pytest.approx([0.2, 0.8, 1.0])
    assert v1_model.calls == [2, 1]  # the second job's repeated reports did not reach the model
    registry.swap(fake_serving_model(v2_model, version="v2"))
    assert scored(same) == pytest.approx([0.8, 0.2])
    assert v2_model.calls == [2]


def report(popularity: int, abuse_type: str = "MSG") -> dict[str, Any]:
    return {
        "abuse_type": abuse_type,
        "report_text_len": 10,
        "profile_rating": 1.5,
        "popularity": popularity,
        "lifetime_matches_created": 7,
    }
