"""The hot routes' fast path (``reportscore.api.fastpath``) answers exactly what FastAPI answers, and only
answers the common case itself: every other request reaches the FastAPI app, with its body intact."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reportscore.api.auth import API_KEY_HEADER
from reportscore.app import create_app
from reportscore.security import keys
from reportscore.storage import migrate
from reportscore.storage.db import Database
from tests.conftest import make_settings
from tests.e2e.test_api_contract import BAD_BODIES, POC_EXAMPLE

VARYING = {"task_id", "created_at", "started_at", "finished_at", "timings", "reports"}
"""Fields that differ between two runs of the same request (ids, clocks)."""


def _normalized(resp: Any) -> tuple[int, Any, dict[str, str]]:
    try:
        body = resp.json()
    except json.JSONDecodeError:
        body = resp.text
    if isinstance(body, dict):
        body = {k: ("<varies>" if k in VARYING and v is not None else v) for k, v in body.items()}
    headers = {
        name: resp.headers[name]
        for name in ("content-type", "retry-after", "www-authenticate", "allow")
        if name in resp.headers
    }
    if "location" in resp.headers:
        headers["location"] = resp.headers["location"].rsplit("/", 1)[0] + "/<id>"
    return resp.status_code, body, headers


def _keys(tmp_path: Path) -> dict[str, str]:
    db = Database.from_settings(make_settings(tmp_path))
    migrate.upgrade_to_head(db)
    made = {
        "all": keys.create_key(db=db, tenant="t1", name="all", scopes=["submit", "read"])[0],
        "read-only": keys.create_key(db=db, tenant="t1", name="reader", scopes=["read"])[0],
    }
    db.dispose()
    return made


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, dict[str, str]]]:
    """The same deployment twice, with the fast path on and off; the same keys in both stores."""
    fast_dir, slow_dir = tmp_path / "fast", tmp_path / "slow"
    made = _keys(fast_dir)
    db = Database.from_settings(make_settings(slow_dir))
    migrate.upgrade_to_head(db)
    for name, key in made.items():  # the same key strings, so requests are identical
        scopes = ["read"] if name == "read-only" else ["submit", "read"]
        keys._store(db, key=key, tenant="t1", name=name, scopes=scopes, rate=None, burst=None)
    db.dispose()
    with (
        TestClient(create_app(make_settings(fast_dir, fast_path=True))) as fast,
        TestClient(create_app(make_settings(slow_dir, fast_path=False))) as slow,
    ):
        assert fast.app.fast_path is not None  # type: ignore[attr-defined]
        assert slow.app.fast_path is None  # type: ignore[attr-defined]
        yield fast, slow, made


def _requests(made: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    key = {API_KEY_HEADER: made["all"]}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/predict", {"json": POC_EXAMPLE, "headers": key}),
        ("POST", "/submit", {"json": POC_EXAMPLE, "headers": key}),
        ("POST", "/score", {"json": POC_EXAMPLE, "headers": key}),
        ("POST", "/score?persist=false", {"json": POC_EXAMPLE, "headers": key}),
        ("POST", "/score?persist=no", {"json": POC_EXAMPLE, "headers": key}),
        ("POST", "/score?persist=maybe", {"json": POC_EXAMPLE, "headers": key}),
        ("POST", "/predict?x=1", {"json": POC_EXAMPLE, "headers": key}),
        ("POST", "/predict", {"json": [{**POC_EXAMPLE[0], "popularity": 3.0}], "headers": key}),
        ("POST", "/predict", {"json": POC_EXAMPLE}),
        ("POST", "/predict", {"json": POC_EXAMPLE, "headers": {API_KEY_HEADER: "rsk_000000000000_nope"}}),
        ("POST", "/predict", {"json": POC_EXAMPLE, "headers": {API_KEY_HEADER: made["read-only"]}}),
        ("POST", "/predict", {"content": json.dumps(POC_EXAMPLE), "headers": {**key, "content-type": "text/plain"}}),
        ("POST", "/predict", {"content": b"[{]", "headers": {**key, "content-type": "application/json"}}),
        ("POST", "/predict", {"content": b"", "headers": {**key, "content-type": "application/json"}}),
        ("PUT", "/predict", {"json": POC_EXAMPLE, "headers": key}),
        ("GET", f"/task/{uuid.uuid4()}", {"headers": key}),
        ("GET", f"/task/{uuid.uuid4()}?wait=0.1", {"headers": key}),
        ("GET", f"/task/{uuid.uuid4()}?wait=-1", {"headers": key}),
        ("GET", f"/task/{uuid.uuid4()}?wait=abc", {"headers": key}),
        ("GET", "/task/not-a-uuid", {"headers": key}),
        ("GET", f"/task/{uuid.uuid4()}", {}),
    ]
    cases += [("POST", "/predict", {"json": body, "headers": key}) for body, _ in BAD_BODIES.values()]
    cases += [("POST", "/score", {"json": body, "headers": key}) for body, _ in BAD_BODIES.values()]
    return cases


def test_every_answer_is_the_frameworks(twins: tuple[TestClient, TestClient, dict[str, str]]) -> None:
    fast, slow, made = twins
    for method, url, kwargs in _requests(made):
        got = _normalized(fast.request(method, url, **kwargs))
        want = _normalized(slow.request(method, url, **kwargs))
        assert got == want, (method, url)


def test_a_task_reads_the_same_through_both(twins: tuple[TestClient, TestClient, dict[str, str]]) -> None:
    fast, slow, made = twins
    key = {API_KEY_HEADER: made["all"]}
    for client in (fast, slow):
        task_id = client.post("/predict", json=POC_EXAMPLE, headers=key).json()["task_id"]
        done = client.get(f"/task/{task_id}?wait=10", headers=key)
        assert done.json()["status"] == "SUCCESS"
    answers = []
    for client in (fast, slow):
        task_id = client.post("/predict", json=POC_EXAMPLE, headers=key).json()["task_id"]
        answers.append(_normalized(client.get(f"/task/{task_id}?wait=10", headers=key)))
        # the long-poll and the plain read agree, through the fast path and FastAPI alike
        assert _normalized(client.get(f"/task/{task_id}", headers=key)) == answers[-1]
    assert answers[0] == answers[1]
    assert answers[0][1]["score"] is not None


def test_the_fast_path_answers_the_common_case_itself(twins: tuple[TestClient, TestClient, dict[str, str]]) -> None:
    fast, _, made = twins
    path = fast.app.fast_path  # type: ignore[attr-defined]
    key = {API_KEY_HEADER: made["all"]}
    before = path.answered
    task_id = fast.post("/predict", json=POC_EXAMPLE, headers=key).json()["task_id"]
    fast.get(f"/task/{task_id}?wait=10", headers=key)
    fast.post("/score", json=POC_EXAMPLE, headers=key)
    assert path.answered == before + 3
    fast.post("/predict", json=[], headers=key)  # a 422: FastAPI's
    fast.post("/predict", json=POC_EXAMPLE, headers={**key, "Idempotency-Key": "k1"})  # FastAPI's too
    assert path.answered == before + 3


def test_a_handed_over_request_is_not_charged_twice_against_the_rate(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    db = Database.from_settings(settings)
    migrate.upgrade_to_head(db)
    key, _ = keys.create_key(db=db, tenant="t1", name="slow", scopes=["submit"], rate=0.01, burst=2)
    db.dispose()
    with TestClient(create_app(settings)) as client:
        headers = {API_KEY_HEADER: key}
        assert client.post("/predict", json=[], headers=headers).status_code == 422  # authorized, then handed over
        assert client.post("/predict", json=POC_EXAMPLE, headers=headers).status_code == 202
        assert client.post("/predict", json=POC_EXAMPLE, headers=headers).status_code == 429


def test_access_log_and_metrics_count_fast_answers(
    twins: tuple[TestClient, TestClient, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    fast, _, made = twins
    with caplog.at_level("INFO", logger="reportscore.access"):
        resp = fast.post("/score", json=POC_EXAMPLE, headers={API_KEY_HEADER: made["all"]})
    lines = [r for r in caplog.records if r.name == "reportscore.access"]
    assert len(lines) == 1
    line = lines[0].__dict__
    assert (line["method"], line["path"], line["route"], line["status"]) == ("POST", "/score", "/score", 200)
    assert line["tenant"] == "t1"
    assert line["key_id"] in made["all"]
    assert line["task_id"] == resp.json()["task_id"]
    metrics = fast.get("/metrics").text
    assert 'route="/score"' in metrics
    assert 'status="200"' in metrics


class _Seen:
    """A middleware added to the app after the fact: it records each request's path and the status it answered."""

    def __init__(self, app: ASGIApp, *, seen: list[tuple[str, int]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, recording_send)


def test_a_middleware_added_to_the_app_sees_fast_path_requests(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []
    app = create_app(make_settings(tmp_path, fast_path=True))
    app.add_middleware(_Seen, seen=seen)
    with TestClient(app) as client:
        before = app.fast_path.answered if app.fast_path is not None else 0
        accepted = client.post("/predict", json=POC_EXAMPLE)
        assert accepted.status_code == 202
        task_id = accepted.json()["task_id"]
        assert client.get(f"/task/{task_id}?wait=10").status_code == 200
        assert client.post("/score", json=POC_EXAMPLE).status_code == 200
        assert app.fast_path is not None
        assert app.fast_path.answered == before + 3  # all three were the fast path's, and the middleware saw them
    assert seen == [("/predict", 202), (f"/task/{task_id}", 200), ("/score", 200)]


def test_the_body_limit_and_error_mapping_run_around_the_fast_path(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fast_path=True, max_body_bytes=2048)
    with TestClient(create_app(settings)) as client:
        path = client.app.fast_path  # type: ignore[attr-defined]
        big = POC_EXAMPLE * 20  # valid reports, which the fast path would accept but for the app's body limit
        answered = path.answered
        assert client.post("/predict", json=big).status_code == 413  # the app's own limit, not a copy
        assert path.answered == answered
