"""The proof of concept's HTTP contract on the real app (ASGI in-process, real SQLite, bundled reference model)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reportscore.scoring.registry import load_model_dir
from reportscore.settings import Settings
from reportscore.storage.models import Job, Report
from tests.e2e.conftest import app_client, state_of
from tests.fakes import FakeModel, fake_serving_model

# The proof of concept's README example, unchanged.
POC_EXAMPLE = [
    {
        "abuse_type": "MSG",
        "report_text_len": 120,
        "profile_rating": 0.45,
        "popularity": 3,
        "lifetime_matches_created": 12,
    },
    {
        "abuse_type": "PRF",
        "report_text_len": 0,
        "profile_rating": 0.91,
        "popularity": 1,
        "lifetime_matches_created": 540,
    },
]


def _counts(client: TestClient) -> tuple[int, int]:
    with state_of(client).db.read() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Job)) or 0),
            int(s.scalar(select(func.count()).select_from(Report)) or 0),
        )


@pytest.mark.parametrize("path", ["/submit", "/predict"])
def test_poc_example_is_scored_by_the_reference_model(client: TestClient, path: str) -> None:
    resp = client.post(path, json=POC_EXAMPLE)
    assert resp.status_code == 202
    body = resp.json()
    assert body["status"] == "PENDING"
    assert uuid.UUID(body["task_id"]).version == 4
    assert resp.headers["location"] == f"/task/{body['task_id']}"

    result = client.get(f"/task/{body['task_id']}", params={"wait": 10})
    assert result.status_code == 200
    data = result.json()
    assert data["task_id"] == body["task_id"]
    assert data["status"] == "SUCCESS"
    assert len(data["score"]) == 2
    assert all(0.0 <= s <= 1.0 for s in data["score"])
    assert data["model"]["name"] == "reportscore-reference"
    assert [r["report_id"] for r in data["reports"]] == [None, None]
    assert data["created_at"].endswith("+00:00")

    # the same numbers as the model scored directly in this process
    model = load_model_dir(Settings().model_path)
    expected = model.model.predict(model.schema.encode_reports(POC_EXAMPLE))
    np.testing.assert_allclose(data["score"], expected, atol=1e-6)


def test_heartbeat_health_and_docs(client: TestClient) -> None:
    assert client.get("/heartbeat").json() == {"message": "Service Ok"}
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert client.get("/docs").status_code == 200


def test_openapi_documents_every_endpoint_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/predict", "/submit", "/task/{task_id}", "/heartbeat", "/health/live", "/health/ready"):
        assert path in paths, path
    for path in ("/predict", "/submit"):
        body_schema = paths[path]["post"]["requestBody"]["content"]["application/json"]
        assert body_schema.get("examples") or body_schema["schema"].get("examples"), path
        # callbacks are off by default: only the original list form (the object form with a callback_url is in
        # the spec only with callbacks enabled: tests/e2e/test_callbacks.py)
        assert body_schema["schema"]["type"] == "array"
        assert body_schema["schema"]["maxItems"] == 10_000
        assert set(body_schema["examples"]) == {"list"}
    schemas = spec["components"]["schemas"]
    assert "SubmitBody" not in schemas
    for name in (
        "ReportIn",
        "TaskAccepted",
        "TaskPending",
        "TaskResult",
        "ErrorBody",
        "Heartbeat",
        "Health",
    ):
        assert schemas[name].get("examples"), f"{name} has no example"


def _with_bad(field: str, value: Any) -> list[dict[str, Any]]:
    bad = dict(POC_EXAMPLE[1])
    bad[field] = value
    return [POC_EXAMPLE[0], bad]


BAD_BODIES: dict[str, tuple[Any, list[Any]]] = {
    "unknown abuse_type": (_with_bad("abuse_type", "SPAM"), ["body", 1, "abuse_type"]),
    "popularity 7": (_with_bad("popularity", 7), ["body", 1, "popularity"]),
    "negative count": (_with_bad("report_text_len", -1), ["body", 1, "report_text_len"]),
    "count over 2^31-1": (_with_bad("lifetime_matches_created", 2**31), ["body", 1, "lifetime_matches_created"]),
    "string for a number": (_with_bad("report_text_len", "120"), ["body", 1, "report_text_len"]),
    "bool for a number": (_with_bad("popularity", True), ["body", 1, "popularity"]),
    "float for an int": (_with_bad("popularity", 2.5), ["body", 1, "popularity"]),
    "unknown field": (_with_bad("colour", "red"), ["body", 1, "colour"]),
    "missing field": ([{k: v for k, v in POC_EXAMPLE[0].items() if k != "popularity"}], ["body", 0, "popularity"]),
    "report_id too long": (_with_bad("report_id", "x" * 129), ["body", 1, "report_id"]),
    "empty list": ([], ["body"]),
    "an object while callbacks are off": ({"abuse_type": "MSG"}, ["body"]),
    "string instead of list": ("MSG", ["body"]),
    "10,001 reports": ([POC_EXAMPLE[0]] * 10_001, ["body"]),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_input_is_422_with_location_and_stores_nothing(client: TestClient, case: str) -> None:
    body, loc = BAD_BODIES[case]
    resp = client.post("/predict", json=body)
    assert resp.status_code == 422, resp.text
    errors = resp.json()["detail"]
    assert any(e["loc"] == loc for e in errors), errors
    assert _counts(client) == (0, 0)


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (
            '[{"abuse_type": "MSG", "report_text_len": 1, "profile_rating": NaN, "popularity": 1, '
            '"lifetime_matches_created": 1}]',
            ["body", 0, "profile_rating"],
        ),
        (
            '[{"abuse_type": "MSG", "report_text_len": 1, "profile_rating": -Infinity, "popularity": 1, '
            '"lifetime_matches_created": 1}]',
            ["body", 0, "profile_rating"],
        ),
        ('[{"abuse_type": "MSG", "report_text_len": 1', ["body", 43]),
        ("not json at all", ["body", 0]),
    ],
    ids=["NaN", "-Infinity", "truncated JSON", "not JSON"],
)
def test_non_finite_and_malformed_json_are_422(client: TestClient, raw: str, loc: list[Any]) -> None:
    resp = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == loc
    assert _counts(client) == (0, 0)


def test_oversized_body_is_413_with_or_without_content_length(client: TestClient) -> None:
    big = b"[" + b" " * (20 * 1024 * 1024) + b"]"
    resp = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        for _ in range(20):
            yield b" " * (1024 * 1024)

    resp = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert "larger than" in resp.json()["detail"]
    assert _counts(client) == (0, 0)


def test_unknown_task_is_404_json(client: TestClient) -> None:
    for task_id in (str(uuid.uuid4()), "not-a-uuid"):
        resp = client.get(f"/task/{task_id}")
        assert resp.status_code == 404
        assert "not found" in resp.json()["detail"]
    assert client.get(f"/task/{uuid.uuid4()}", params={"wait": 1}).status_code == 404


def test_idempotency_key_replays_and_conflicts(client: TestClient) -> None:
    headers = {"Idempotency-Key": "retry-123"}
    first = client.post("/predict", json=POC_EXAMPLE, headers=headers)
    assert first.status_code == 202
    # same content, different key order and whitespace: still the same request
    reordered = json.dumps([dict(reversed(list(r.items()))) for r in POC_EXAMPLE], indent=3)
    again = client.post("/predict", content=reordered, headers={**headers, "content-type": "application/json"})
    assert again.status_code == 202
    assert again.json()["task_id"] == first.json()["task_id"]
    assert _counts(client) == (1, 2)

    conflict = client.post("/predict", json=POC_EXAMPLE[:1], headers=headers)
    assert conflict.status_code == 409
    assert "Idempotency-Key" in conflict.json()["detail"]
    assert _counts(client) == (1, 2)

    other = client.post("/predict", json=POC_EXAMPLE, headers={"Idempotency-Key": "another"})
    assert other.json()["task_id"] != first.json()["task_id"]


def test_idempotency_key_expires(tmp_path: Path) -> None:
    with app_client(tmp_path, idempotency_ttl_s=0.3) as client:
        headers = {"Idempotency-Key": "short-lived"}
        first = client.post("/predict", json=POC_EXAMPLE, headers=headers).json()["task_id"]
        assert client.post("/predict", json=POC_EXAMPLE, headers=headers).json()["task_id"] == first
        time.sleep(0.5)
        later = client.post("/predict", json=POC_EXAMPLE[:1], headers=headers)
        assert later.status_code == 202
        assert later.json()["task_id"] != first
        # the original task is still readable
        assert client.get(f"/task/{first}", params={"wait": 5}).json()["status"] == "SUCCESS"


def test_backpressure_answers_503_with_retry_after(tmp_path: Path) -> None:
    gate = threading.Event()
    with app_client(tmp_path, max_pending_jobs=2, worker_threads=1) as client:
        state_of(client).registry.swap(fake_serving_model(FakeModel(gate=gate)))
        ids = [client.post("/predict", json=POC_EXAMPLE).json()["task_id"] for _ in range(2)]
        full = client.post("/predict", json=POC_EXAMPLE)
        assert full.status_code == 503
        assert full.headers["retry-after"] == "1"
        assert _counts(client) == (2, 4)
        gate.set()
        for task_id in ids:
            assert client.get(f"/task/{task_id}", params={"wait": 10}).json()["status"] == "SUCCESS"
        assert client.post("/predict", json=POC_EXAMPLE).status_code == 202


def test_long_poll_returns_when_the_job_finishes(tmp_path: Path) -> None:
    gate = threading.Event()
    with app_client(tmp_path) as client:
        state_of(client).registry.swap(fake_serving_model(FakeModel(gate=gate)))
        task_id = client.post("/predict", json=POC_EXAMPLE).json()["task_id"]

        pending = client.get(f"/task/{task_id}")
        assert pending.status_code == 202
        assert pending.json()["task_id"] == task_id
        assert pending.json()["status"] in ("PENDING", "STARTED")

        t0 = time.monotonic()
        timed_out = client.get(f"/task/{task_id}", params={"wait": 0.5})
        assert timed_out.status_code == 202
        assert time.monotonic() - t0 >= 0.45

        threading.Timer(0.3, gate.set).start()
        t0 = time.monotonic()
        done = client.get(f"/task/{task_id}", params={"wait": 20})
        elapsed = time.monotonic() - t0
        assert done.status_code == 200
        assert done.json()["score"] == [3 / 5, 1 / 5]
        assert elapsed < 5, f"long-poll did not wake on completion ({elapsed:.2f}s)"


def test_client_report_ids_are_echoed(client: TestClient) -> None:
    reports = [dict(POC_EXAMPLE[0], report_id="a-1"), dict(POC_EXAMPLE[1], report_id="b-2")]
    task_id = client.post("/predict", json=reports).json()["task_id"]
    data = client.get(f"/task/{task_id}", params={"wait": 10}).json()
    assert [r["report_id"] for r in data["reports"]] == ["a-1", "b-2"]
    assert all(isinstance(r["id"], int) for r in data["reports"])


def test_failed_job_reads_as_failure_with_reason(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        state_of(client).registry.swap(fake_serving_model(FakeModel(nan=True)))
        task_id = client.post("/predict", json=POC_EXAMPLE).json()["task_id"]
        data = client.get(f"/task/{task_id}", params={"wait": 10})
        assert data.status_code == 200
        assert data.json()["status"] == "FAILURE"
        assert "finite" in data.json()["error"]
