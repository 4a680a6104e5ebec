"""Shadows end to end in the embedded deployment: started over HTTP, followed by the running process, scored off
the answer's path (a shadow that raises on every batch leaves every job SUCCESS with the champion's scores), compared,
and required as evidence by a promotion."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import func, select

from reportscore.scoring.registration import register_model
from reportscore.storage.db import Database
from reportscore.storage.models import Report, ShadowScore
from tests.e2e.conftest import app_client, state_of
from tests.fakes import write_fake_model_dir
from tests.model_helpers import tiny_xgboost

RATING = 4.321


def _until(check: Callable[[], Any], what: str, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _reports(n: int, seed: int) -> list[dict[str, Any]]:
    return [
        {
            "abuse_type": "MSG" if (i + seed) % 3 else "PRF",
            "report_text_len": (i * 37 + seed) % 400,
            "profile_rating": RATING,
            "popularity": (i + seed) % 6,
            "lifetime_matches_created": (i * 11) % 90,
        }
        for i in range(n)
    ]


def _shadow_count(db: Database, version: str) -> int:
    with db.read() as s:
        return int(
            s.scalar(select(func.count()).select_from(ShadowScore).where(ShadowScore.model_version == version)) or 0
        )


def _failed(version: str) -> float:
    labels = {"model_version": version, "outcome": "failed"}
    return REGISTRY.get_sample_value("reportscore_shadow_reports_total", labels) or 0.0


def test_shadows_over_http_never_touch_the_answer_and_feed_the_comparison(tmp_path: Path) -> None:
    tiny_xgboost(tmp_path / "challenger.ubj")
    broken_dir = write_fake_model_dir(tmp_path / "broken", raise_on_rating=RATING)
    with app_client(tmp_path, model_refresh_s=0.2, extra_model_formats=["tests.fakes:FakeFormat"]) as client:
        state = state_of(client)
        register_model(db=state.db, settings=state.settings, artifact=tmp_path / "challenger.ubj", version="2.0.0")
        register_model(
            db=state.db, settings=state.settings, artifact=broken_dir / "fake.json", version="9.0.0", format_name="fake"
        )
        assert client.post("/models/2.0.0/shadow").status_code == 200
        started = client.post("/models/9.0.0/shadow", params={"fraction": 1.0})
        assert [s["version"] for s in started.json()["shadows"]] == ["2.0.0", "9.0.0"]
        assert client.post("/models/7.7.7/shadow").status_code == 404
        assert client.post("/models/2.0.0/shadow", params={"fraction": 0}).status_code == 422
        shadows = state.jobs.shadows
        assert shadows is not None
        _until(lambda: shadows.versions == {"2.0.0": 1.0, "9.0.0": 1.0}, "the process to follow the shadow set")
        failed_before = _failed("9.0.0")

        bodies = [_reports(5, seed) for seed in range(20)]
        task_ids = [client.post("/predict", json=body).json()["task_id"] for body in bodies]
        champion_scores = [client.post("/score", params={"persist": "false"}, json=b).json()["score"] for b in bodies]
        for task_id, expected in zip(task_ids, champion_scores, strict=True):
            task = client.get(f"/task/{task_id}", params={"wait": 10}).json()
            assert task["status"] == "SUCCESS", task
            assert task["model"]["version"] == "1.0.0"
            assert task["score"] == expected
            assert "shadow" not in str(task)
        scored = client.post("/score", json=_reports(5, 99)).json()  # persisted: shadowed off the response
        assert scored["model"]["version"] == "1.0.0"
        _until(lambda: _shadow_count(state.db, "2.0.0") == 105, "the working shadow's scores")
        _until(lambda: _failed("9.0.0") - failed_before >= 105, "the broken shadow's failures to be counted")
        assert _shadow_count(state.db, "9.0.0") == 0
        with state.db.read() as s:
            assert s.scalar(select(func.count()).select_from(Report)) == 105

        compared = client.get("/models/compare", params={"challenger": "2.0.0"}).json()
        assert compared["champion"] == "1.0.0"
        assert compared["n_reports"] == 105
        assert compared["labelled"] is None
        assert compared["verdict"] == "not distinguishable with 0 labelled reports"
        assert sum(compared["histograms"]["challenger"]) == 105
        assert (
            client.get("/models/compare", params={"challenger": "2.0.0", "since": "2026-01-01T00:00:00"}).status_code
            == 422
        )

        panel = client.get("/dashboard/shadows").json()
        assert panel["champion"] == "1.0.0"
        rows = {row["version"]: row for row in panel["shadows"]}
        assert rows["2.0.0"]["n_reports"] == 105
        assert rows["9.0.0"]["n_reports"] == 0
        assert "dashboard/shadows" in client.get("/dashboard/static/dashboard.js").text
        assert 'id="shadows"' in client.get("/dashboard").text

        refused = client.post("/models/2.0.0/promote", params={"require_better": "auc:0.01"})
        assert refused.status_code == 409
        assert "0 labelled reports" in refused.json()["detail"]
        malformed = client.post("/models/2.0.0/promote", params={"require_better": "accuracy:1"})
        assert malformed.status_code == 422
        assert malformed.json()["detail"][0]["loc"] == ["query", "require_better"]  # FastAPI's validation shape
        assert client.get("/models/compare", params={"challenger": "2.0.0", "until": "2191"}).status_code == 422
        assert client.get("/models").json()["champion"] == "1.0.0"

        assert client.delete("/models/9.0.0/shadow").json()["shadows"][0]["version"] == "2.0.0"
        assert client.delete("/models/9.0.0/shadow").status_code == 404
        _until(lambda: shadows.versions == {"2.0.0": 1.0}, "the process to drop the stopped shadow")
