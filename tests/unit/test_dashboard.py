"""The dashboard's data (rates, percentiles, score shares, errors) and the page's files, served by the app."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reportscore.api.routes.monitoring import STATIC_DIR
from reportscore.api.schemas.monitoring import DashboardData
from reportscore.monitoring import dashboard
from reportscore.monitoring.dashboard import Snapshot
from reportscore.storage.repositories.stats import FailedJob
from tests.e2e.conftest import app_client, state_of
from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.fakes import FakeModel, fake_serving_model

INF = float("inf")


def _snap(at: float, requests: float, latency_le_01: float, latency_total: float) -> Snapshot:
    return Snapshot(
        at=at,
        requests=requests,
        job_latency=((0.1, latency_le_01), (1.0, latency_total), (INF, latency_total)),
        jobs_success=latency_total,
    )


def test_rates_and_percentiles_come_from_consecutive_snapshots() -> None:
    snaps = [
        _snap(1000.0, 0, 0, 0),
        _snap(1002.0, 20, 10, 10),
        _snap(1004.0, 60, 10, 30),
        _snap(1040.0, 60, 10, 30),  # idle for 36 s: nothing in the percentile window
    ]
    data = dashboard.build(snaps, mode="embedded", runner="inprocess", model={}, errors=[], score_bounds=(0.5, 1.0))
    series = data["series"]
    assert series["t"] == [1000.0, 1002.0, 1004.0, 1040.0]
    assert series["requests_per_s"][:3] == [None, 10.0, 15.0]  # 10 s rate window: (60 - 0) / 4 s
    assert series["requests_per_s"][3] == 0.0
    assert series["jobs_per_s"][1] == 5.0
    p50 = series["job_latency_ms"]["p50"]
    assert p50[0] is None
    assert p50[1] == pytest.approx(50.0)  # 10 observations <= 0.1 s: the median interpolates to 0.05 s
    assert p50[2] == pytest.approx(100 + 900 * (15 - 10) / 20)  # 30 observations, 20 of them in (0.1, 1]
    assert p50[3] is None
    assert data["now"]["requests_per_s"] == 0.0
    assert data["totals"]["jobs_success"] == 30


def test_score_distribution_is_the_share_per_bucket_over_the_window() -> None:
    first = Snapshot(at=0.0, scores={"MSG": ((0.5, 1.0), (1.0, 1.0), (INF, 1.0))})
    last = Snapshot(
        at=10.0,
        scores={"MSG": ((0.5, 2.0), (1.0, 5.0), (INF, 5.0)), "PRF": ((0.5, 4.0), (1.0, 4.0), (INF, 4.0))},
    )
    scores = dashboard.score_distribution(first, last, (0.5, 1.0))
    assert scores["bucket_upper"] == [0.5, 1.0]
    assert scores["by_abuse_type"]["MSG"] == {"count": 4, "share": [0.25, 0.75]}
    assert scores["by_abuse_type"]["PRF"] == {"count": 4, "share": [1.0, 0.0]}


def test_recent_errors_merge_failed_jobs_and_logged_errors_newest_first() -> None:
    handler = dashboard.RecentErrors(capacity=3)
    logger = logging.getLogger("reportscore.test-dashboard")
    logger.addHandler(handler)
    try:
        logger.error("job failed", extra={"task_id": "t-1", "error": "poison"})  # the same task as the store's
        logger.error("request crashed", exc_info=(ValueError, ValueError("boom"), None))
    finally:
        logger.removeHandler(handler)
    failed = FailedJob(
        task_id="t-1",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        finished_at=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        model_version="1",
        error="scoring failed: poison",
    )
    rows = dashboard.recent_errors([failed], handler.entries(), limit=10)
    assert [r["source"] for r in rows] == ["log reportscore.test-dashboard", "job"]
    assert rows[0]["message"] == "request crashed: ValueError: boom"
    assert rows[1] == {"at": failed.finished_at, "source": "job", "task_id": "t-1", "message": failed.error}


def test_dashboard_data_after_real_traffic(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        for _ in range(3):
            task_id = client.post("/predict", json=POC_EXAMPLE).json()["task_id"]
            assert client.get(f"/task/{task_id}", params={"wait": 10}).json()["status"] == "SUCCESS"
            assert client.post("/score", json=POC_EXAMPLE).status_code == 200
        state_of(client).registry.swap(fake_serving_model(FakeModel(nan=True)))
        failed = client.post("/predict", json=POC_EXAMPLE).json()["task_id"]
        assert client.get(f"/task/{failed}", params={"wait": 10}).json()["status"] == "FAILURE"
        time.sleep(1.1)  # the data call takes a fresh sample when the last is older than a second
        resp = client.get("/dashboard/data")
    assert resp.status_code == 200
    data = DashboardData.model_validate(resp.json())
    assert data.mode == "embedded"
    assert data.model.version == "fake-1"  # what the process serves now
    assert data.workers.up == 2
    assert data.queue.store_up is True
    # totals count since the process started (other tests' apps included); the window is this app's life
    assert data.totals.jobs_success >= 3
    assert data.totals.jobs_failure >= 1
    assert data.totals.requests >= 10
    assert len(data.series.t) >= 2
    assert any(v for v in data.series.requests_per_s if v)
    assert any(v for v in data.series.job_latency_ms.p99 if v)
    assert data.scores.by_abuse_type["MSG"].count == 3 + 3
    assert data.scores.by_abuse_type["PRF"].count == 3 + 3
    assert data.recent_errors[0].task_id == failed
    assert data.recent_errors[0].source == "job"
    assert "finite" in data.recent_errors[0].message
    assert resp.json()["generated_at"].endswith("+00:00")


def test_page_and_its_files_are_served_from_the_package(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        page = client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        referenced = re.findall(r'(?:src|href)="dashboard/static/([^"]+)"', page.text)
        assert set(referenced) == {
            "vendor/uplot/uPlot.min.css",
            "dashboard.css",
            "vendor/uplot/uPlot.iife.min.js",
            "dashboard.js",
        }
        for name in referenced:
            asset = client.get(f"/dashboard/static/{name}")
            assert asset.status_code == 200, name
            assert asset.headers["cache-control"] == "no-cache"
            again = client.get(f"/dashboard/static/{name}", headers={"If-None-Match": asset.headers["etag"]})
            assert again.status_code == 304
        assert "javascript" in client.get("/dashboard/static/dashboard.js").headers["content-type"]
        assert client.get("/dashboard/static/../settings.py").status_code == 404
        assert client.get("/dashboard/static/nothing.js").status_code == 404
        for name in ("dashboard.html", "dashboard.js", "dashboard.css"):  # nothing loaded from another origin
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", (STATIC_DIR / name).read_text()), name


def test_vendored_chart_library_is_the_published_one_with_its_licence() -> None:
    vendor = STATIC_DIR / "vendor" / "uplot"
    readme = (vendor / "README.md").read_text()
    pinned = dict(re.findall(r"\| `([^`]+)` \| `[^`]+` \| `([0-9a-f]{64})` \|", readme))
    assert set(pinned) == {"uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in pinned.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (vendor / "LICENSE").read_text()
    assert (vendor / "uPlot.iife.min.js").read_text().startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
