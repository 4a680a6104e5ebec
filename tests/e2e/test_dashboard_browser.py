"""The dashboard page in a real browser: Debian's Chromium, headless, driven by Playwright's Python client (never a
browser download), against the real service under real traffic. Saves a screenshot to test-artifacts/."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest

from tests.conftest import require
from tests.servers import REPO_ROOT, ServiceProcess

pytestmark = [pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHARTS = {"throughput", "job_latency", "http_latency", "queue", "scores", "errors"}
TRAFFIC_CHARTS = {"throughput", "job_latency", "http_latency", "scores"}
"""Charts whose every series must show something above zero after the traffic (queue and errors may stay at 0)."""


def reports(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    return [
        {
            "abuse_type": "MSG" if rng.random() < 0.6 else "PRF",
            "report_text_len": int(rng.integers(0, 3000)),
            "profile_rating": float(rng.uniform(0, 10)),
            "popularity": int(rng.integers(0, 6)),
            "lifetime_matches_created": int(rng.integers(0, 10_000)),
        }
        for _ in range(n)
    ]


def send_traffic(url: str, *, seconds: float, seed: int, stop: threading.Event | None = None) -> int:
    """Submits (polled to completion), synchronous scores and a few invalid bodies; returns the requests sent."""
    rng = np.random.default_rng(seed)
    sent = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as http:
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            task_id = http.post("/submit", json=reports(rng, int(rng.integers(1, 200)))).json()["task_id"]
            assert http.post("/score", json=reports(rng, int(rng.integers(1, 50)))).status_code == 200
            assert http.get(f"/task/{task_id}", params={"wait": 10}).json()["status"] == "SUCCESS"
            sent += 3
            if rng.random() < 0.1:
                assert http.post("/predict", json=[{"abuse_type": "SPAM"}]).status_code == 422
                sent += 1
            time.sleep(float(rng.uniform(0, 0.05)))
    return sent


def test_dashboard_shows_live_traffic_in_a_real_browser(tmp_path: Path) -> None:
    require(CHROMIUM.exists(), "Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with ServiceProcess(tmp_path / "data") as service:
        with ThreadPoolExecutor(max_workers=3) as pool:  # a few seconds of traffic, over several samples
            assert sum(pool.map(lambda s: send_traffic(service.url, seconds=5, seed=s), range(3))) > 30
        stop = threading.Event()
        background = threading.Thread(
            target=send_traffic, args=(service.url,), kwargs={"seconds": 60, "seed": 9, "stop": stop}
        )
        background.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    problems: list[str] = []
                    foreign: list[str] = []
                    page.on("pageerror", lambda error: problems.append(str(error)))
                    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                    page.on("request", lambda r: None if r.url.startswith(service.url) else foreign.append(r.url))

                    page.goto(f"{service.url}/dashboard", wait_until="domcontentloaded")
                    page.wait_for_function("() => window.__dashboard && window.__dashboard.firstDataAt !== null")
                    timing = page.evaluate(
                        """() => ({
                            dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
                            firstData: window.__dashboard.firstDataAt,
                        })"""
                    )
                    assert timing["dcl"] < 1000, timing
                    assert timing["firstData"] < 1000, timing  # page, chart library and first data in < 1 s

                    lengths = page.evaluate("() => window.__dashboard.seriesLengths()")
                    assert set(lengths) == CHARTS
                    for chart, series in lengths.items():
                        assert series, chart
                        assert all(n > 0 for n in series), f"{chart} has an empty series: {series}"
                    maxima = page.evaluate("() => window.__dashboard.seriesMax()")
                    for chart in TRAFFIC_CHARTS:
                        assert all(m > 0 for m in maxima[chart]), f"{chart}: {maxima[chart]}"

                    # live: the page keeps refreshing (every 2 s) and shows the traffic still arriving
                    first = page.evaluate("() => [window.__dashboard.updates, window.__dashboard.data.totals.requests]")
                    page.wait_for_function(f"() => window.__dashboard.updates >= {first[0] + 2}", timeout=10_000)
                    later = page.evaluate("() => window.__dashboard.data.totals.requests")
                    assert later > first[1]
                    assert page.inner_text("#model").startswith("reportscore-reference ")
                    assert page.inner_text("#t-workers") == "2"
                    assert "live" in page.inner_text("#status")

                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
                    assert not problems, problems
                    assert not foreign, f"requests outside the service: {foreign}"
                finally:
                    browser.close()
        finally:
            stop.set()
            background.join(timeout=30)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
