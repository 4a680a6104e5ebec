"""POST /score (synchronous, through the API's batcher), group commit, and long-poll without database queries."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from reportscore.scoring.registry import load_model_dir
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.models import Job, Report
from tests.e2e.conftest import app_client, state_of
from tests.e2e.test_api_contract import BAD_BODIES, POC_EXAMPLE
from tests.fakes import FakeModel, fake_serving_model


def test_score_answers_in_the_request_and_persists(client: TestClient) -> None:
    resp = client.post("/score", json=POC_EXAMPLE)
    assert resp.status_code == 200
    body = resp.json()
    model = load_model_dir(Settings().model_path)
    np.testing.assert_allclose(body["score"], model.model.predict(model.schema.encode_reports(POC_EXAMPLE)), atol=1e-6)
    assert body["model"] == {"name": "reportscore-reference", "version": "1.0.0"}
    # committed before the answer: readable as a finished task
    task = client.get(f"/task/{body['task_id']}").json()
    assert task["status"] == "SUCCESS"
    assert task["score"] == body["score"]


def test_score_without_persisting_stores_nothing(client: TestClient) -> None:
    resp = client.post("/score", params={"persist": "false"}, json=POC_EXAMPLE)
    assert resp.status_code == 200
    assert resp.json()["task_id"] is None
    with state_of(client).db.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


@pytest.mark.parametrize("case", ["popularity 7", "unknown field", "empty list", "10,001 reports"])
def test_score_validates_like_predict(client: TestClient, case: str) -> None:
    body, loc = BAD_BODIES[case]
    resp = client.post("/score", json=body)
    assert resp.status_code == 422
    assert any(e["loc"] == loc for e in resp.json()["detail"])


def test_concurrent_score_requests_share_model_calls(tmp_path: Path) -> None:
    gate = threading.Event()
    fake = FakeModel(gate=gate)
    with app_client(tmp_path) as client:
        state_of(client).registry.swap(fake_serving_model(fake))
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(client.post, "/score", json=POC_EXAMPLE) for _ in range(8)]
            time.sleep(0.5)  # the first call holds the model; the other seven queue behind it
            gate.set()
            results = [f.result() for f in futures]
        assert all(r.status_code == 200 for r in results)
        assert all(r.json()["score"] == [3 / 5, 1 / 5] for r in results)
        assert len(fake.calls) < 8, f"every request had its own model call: {fake.calls}"
        assert sum(fake.calls) == 16


def test_concurrent_submits_share_commits(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        committer = state_of(client).committer
        with ThreadPoolExecutor(max_workers=16) as pool:
            codes = list(pool.map(lambda _: client.post("/predict", json=POC_EXAMPLE).status_code, range(64)))
        assert codes == [202] * 64
        # The runner's claims and results go through the same committer, so there are more than 64 items; the
        # 64 submits alone would already need 64 groups if none shared one.
        assert committer.items >= 64
        assert committer.groups < 64, "no two submits shared a transaction"
        with state_of(client).db.read() as s:
            assert s.scalar(select(func.count()).select_from(Report)) == 128


def count_queries(db: Database, *, about: str) -> list[str]:
    """Record every statement sent to the store whose parameters mention ``about`` (a task id).

    Background work that has nothing to do with the waiting request (the champion check, the dashboard sampler)
    runs on its own schedule and is not what a long-poll costs, so it is not counted.
    """
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        if about in str(parameters):
            seen.append(statement[:80])

    for engine in {db.write_engine, db.read_engine}:
        event.listen(engine, "before_cursor_execute", record)
    return seen


def test_long_poll_makes_no_database_queries_while_waiting(tmp_path: Path) -> None:
    gate = threading.Event()
    with app_client(tmp_path) as client:
        state = state_of(client)
        state.registry.swap(fake_serving_model(FakeModel(gate=gate)))
        task_id = client.post("/predict", json=POC_EXAMPLE).json()["task_id"]
        time.sleep(0.3)  # the job is now claimed and held by the gated model
        queries = count_queries(state.db, about=task_id)
        result: dict[str, object] = {}
        waiter = threading.Thread(target=lambda: result.update(r=client.get(f"/task/{task_id}?wait=5")))
        waiter.start()
        time.sleep(0.5)
        during_start = len(queries)
        time.sleep(4.0)
        during = queries[during_start:]
        waiter.join()
        gate.set()
    assert during == [], f"queries during the wait: {during}"
    assert queries, "the listener saw no query at all: it is not measuring anything"
    assert result["r"].status_code == 202  # type: ignore[attr-defined]
