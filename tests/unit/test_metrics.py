"""Metrics recorded by the real code paths (HTTP, score_jobs, the sync batcher, the store gauges), read back through
``GET /metrics`` or the registry. This process records in single-process mode; tests/e2e covers multiprocess mode."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from reportscore.jobs import submission as jobs_submission
from reportscore.monitoring import exposition, metrics
from reportscore.monitoring.dashboard import histogram_quantile
from reportscore.scoring.service import score_jobs
from reportscore.storage.db import Database
from reportscore.storage.repositories import jobs as jobs_repo
from reportscore.storage.repositories import stats as stats_repo
from tests.e2e.conftest import app_client
from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.fakes import POISON_TEXT_LEN, FakeModel, fake_serving_model

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path) as c:
        yield c


def test_http_requests_are_labelled_by_route_template_never_the_raw_path(client: TestClient) -> None:
    before = scrape(client)
    unknown = str(uuid.uuid4())
    assert client.get(f"/task/{unknown}").status_code == 404
    too_big = client.post("/predict", content=b"[" + b" " * (9 * 1024 * 1024) + b"]")
    assert too_big.status_code == 413  # answered before routing: the template is still found
    assert client.get(f"/no/such/{unknown}").status_code == 404
    after = scrape(client)

    def delta(route: str, method: str, status: str) -> float:
        labels = {"method": method, "route": route, "status": status}
        name = "reportscore_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("/task/{task_id}", "GET", "404") == 1
    assert delta("/predict", "POST", "413") == 1
    assert delta("unmatched", "GET", "404") == 1
    assert not any(unknown in label for (_, labels) in after for _, label in labels)
    hist = {"method": "GET", "route": "/task/{task_id}", "status": "404"}
    count = "reportscore_http_request_duration_seconds_count"
    assert value(after, count, **hist) - value(before, count, **hist) == 1
    assert value(after, "reportscore_http_request_duration_seconds_bucket", le="+Inf", **hist) >= 1


def test_metrics_endpoint_speaks_openmetrics_when_asked(client: TestClient) -> None:
    resp = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.text.rstrip().endswith("# EOF")
    assert "# UNIT reportscore_job_latency_seconds seconds" in resp.text


def test_every_declared_metric_is_exported_after_traffic(client: TestClient) -> None:
    task_id = client.post("/predict", json=POC_EXAMPLE).json()["task_id"]
    assert client.get(f"/task/{task_id}", params={"wait": 10}).json()["status"] == "SUCCESS"
    assert client.post("/score", json=POC_EXAMPLE).status_code == 200
    text = client.get("/metrics").text
    families = {f.name for f in text_string_to_metric_families(text)}
    for info in metrics.DECLARED.values():
        family = info.name.removesuffix("_total") if info.type == "counter" else info.name
        if info.name == "reportscore_model_predict_errors_total":
            continue  # only appears once a model call failed (covered below)
        assert family in families, f"{info.name} is declared but not exported"
    samples = scrape(client)
    assert value(samples, "reportscore_worker_up", runner="inprocess") == 2
    assert value(samples, "reportscore_store_up") == 1
    assert value(samples, "reportscore_model_serving", model_name="reportscore-reference", model_version="1.0.0") == 1


def _report(popularity: int, abuse_type: str = "MSG", text_len: int = 10) -> dict[str, Any]:
    return {
        "abuse_type": abuse_type,
        "report_text_len": text_len,
        "profile_rating": 1.5,
        "popularity": popularity,
        "lifetime_matches_created": 7,
    }


def _submit(db: Database, reports: list[dict[str, Any]]) -> str:
    return jobs_submission.submit_job(
        db=db, reports=reports, owner="t", idempotency_key=None, idempotency_ttl_s=60
    ).job_id


def test_score_jobs_records_jobs_latency_predict_and_scores(db: Database) -> None:
    version = f"m-{uuid.uuid4().hex[:8]}"  # labels of this test only
    good = [_submit(db, [_report(5), _report(1, "PRF"), _report(2, "PRF")]), _submit(db, [_report(4)])]
    poison = _submit(db, [_report(3, text_len=POISON_TEXT_LEN)])
    success_before = sample("reportscore_jobs_finished_total", status="SUCCESS")
    failure_before = sample("reportscore_jobs_finished_total", status="FAILURE")
    latency_before = sample("reportscore_job_latency_seconds_count", status="SUCCESS")

    outcome = score_jobs(db=db, model=fake_serving_model(FakeModel(), version=version), job_ids=[*good, poison])

    assert sorted(outcome.succeeded) == sorted(good)
    assert outcome.failed == [poison]
    assert sample("reportscore_jobs_finished_total", status="SUCCESS") - success_before == 2
    assert sample("reportscore_jobs_finished_total", status="FAILURE") - failure_before == 1
    assert sample("reportscore_job_latency_seconds_count", status="SUCCESS") - latency_before == 2
    queue = {"model_version": version, "source": "queue"}
    # the batch call failed (poison), then each job alone: 2 good calls, 2 failed ones
    assert sample("reportscore_model_predict_errors_total", **queue) == 2
    assert sample("reportscore_model_predict_duration_seconds_count", **queue) == 2
    assert sample("reportscore_model_batch_size_reports_sum", **queue) == 4
    # the fake model scores popularity / 5: MSG got 1.0 and 0.8, PRF got 0.2 and 0.4
    msg, prf = {"abuse_type": "MSG", "model_version": version}, {"abuse_type": "PRF", "model_version": version}
    assert sample("reportscore_report_score_count", **msg) == 2
    assert sample("reportscore_report_score_sum", **msg) == pytest.approx(1.8)
    assert sample("reportscore_report_score_bucket", le="0.75", **msg) == 0
    assert sample("reportscore_report_score_bucket", le="0.8", **msg) == 1
    assert sample("reportscore_report_score_bucket", le="1.0", **msg) == 2
    assert sample("reportscore_report_score_bucket", le="0.2", **prf) == 1
    assert sample("reportscore_report_score_bucket", le="0.4", **prf) == 2
    assert sample("reportscore_model_serving", model_name="fake", model_version=version) == 1


def test_sync_scoring_records_with_source_sync(client: TestClient) -> None:
    before = sample("reportscore_model_batch_size_reports_sum", model_version="1.0.0", source="sync")
    assert client.post("/score", json=POC_EXAMPLE * 3).status_code == 200
    after = sample("reportscore_model_batch_size_reports_sum", model_version="1.0.0", source="sync")
    assert after - before == 6


def test_observe_many_equals_observing_one_by_one() -> None:
    bounds = (0.001, 0.01, 0.1, 0.5, 1.0, 10.0)
    one, many = CollectorRegistry(), CollectorRegistry()
    by_one = Histogram("h", "h", buckets=bounds, registry=one)
    by_many = Histogram("h", "h", buckets=bounds, registry=many)
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.exponential(0.3, 5000), np.array([0.0, 0.001, 0.01, 1.0, 10.0, 11.0, np.inf])])
    for v in values:
        by_one.observe(float(v))
    metrics.observe_many(by_many, values)
    compared = 0
    for family in one.collect():
        for s in family.samples:
            if not s.name.endswith("_created"):
                assert many.get_sample_value(s.name, s.labels) == pytest.approx(s.value), s
                compared += 1
    assert compared == len(bounds) + 1 + 2  # every bucket with +Inf, _count and _sum


def test_histogram_quantile_follows_promql() -> None:
    buckets = ((0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (float("inf"), 40.0))
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1 * 10 / 10)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (20 - 10) / 20)
    assert histogram_quantile(1.0, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.99, ((1.0, 1.0), (float("inf"), 10.0))) == 1.0  # in +Inf: the last finite bound
    assert histogram_quantile(0.5, ((1.0, 0.0), (float("inf"), 0.0))) is None


def test_queue_gauges_come_from_the_store_and_survive_its_failure(db: Database) -> None:
    jobs = [_submit(db, [_report(1)]) for _ in range(3)]
    score_jobs(db=db, model=fake_serving_model(), job_ids=jobs[:1])
    with db.write() as s:  # one job being scored: STARTED
        jobs_repo.claim_jobs(s, job_ids=jobs[1:2], now=datetime.now(UTC), lease_s=60, max_attempts=3)

    def read() -> stats_repo.QueueStats:
        with db.read() as session:
            return stats_repo.queue_stats(session)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(exposition.StoreCollector(read, max_age_s=0))
    assert registry.get_sample_value("reportscore_jobs_unfinished", {"status": "PENDING"}) == 1
    assert registry.get_sample_value("reportscore_jobs_unfinished", {"status": "STARTED"}) == 1
    age = registry.get_sample_value("reportscore_queue_oldest_pending_age_seconds")
    assert age is not None
    assert 0 <= age < 60
    assert registry.get_sample_value("reportscore_store_up") == 1

    def broken() -> stats_repo.QueueStats:
        raise OSError("disk gone")

    failing = CollectorRegistry(auto_describe=False)
    failing.register(exposition.StoreCollector(broken, max_age_s=0))
    assert failing.get_sample_value("reportscore_store_up") == 0
    assert failing.get_sample_value("reportscore_jobs_unfinished", {"status": "PENDING"}) is None


def test_a_model_swap_moves_the_serving_gauge() -> None:
    name = f"swap-{uuid.uuid4().hex[:6]}"
    metrics.note_serving_model(model_name=name, model_version="1")
    metrics.note_serving_model(model_name=name, model_version="2")
    assert sample("reportscore_model_serving", model_name=name, model_version="1") == 0
    assert sample("reportscore_model_serving", model_name=name, model_version="2") == 1


def test_a_failure_to_record_never_reaches_the_caller() -> None:
    before = sample("reportscore_jobs_finished_total", status="SUCCESS")
    metrics.observe_jobs_finished("SUCCESS", ["not a number"])  # type: ignore[list-item]
    assert sample("reportscore_jobs_finished_total", status="SUCCESS") == before


class _RecordingTracerProvider(trace.TracerProvider):
    """A configured global tracer provider (as ``opentelemetry-instrument`` would set one) that counts tracers."""

    def __init__(self) -> None:
        self.tracers: list[str] = []

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        self.tracers.append(instrumenting_module_name)
        return trace.NoOpTracer()


@pytest.mark.parametrize("enabled", [False, True])
def test_fastapi_opentelemetry_follows_its_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    provider = _RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    with app_client(tmp_path, opentelemetry=enabled) as client:
        assert client.get("/heartbeat").status_code == 200
        assert client.post("/score?persist=false", json=POC_EXAMPLE).status_code == 200  # a fast-path request
    assert bool(provider.tracers) is enabled
