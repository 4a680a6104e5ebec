"""When the service itself fails, the client gets a generic JSON error: never a traceback, SQL, a file path or the
exception's text (they go to the log)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reportscore.api.deps import get_state
from reportscore.app import create_app
from tests.conftest import make_settings
from tests.e2e.conftest import state_of

REPORT = {
    "abuse_type": "MSG",
    "report_text_len": 120,
    "profile_rating": 0.45,
    "popularity": 3,
    "lifetime_matches_created": 12,
}
SECRET = "SELECT secret FROM jobs /srv/reportscore/data/reportscore.db"
LEAKS = ("Traceback", 'File "', "sqlite", "SELECT", "INSERT", "UPDATE", "jobs", "reports", ".db", "locked", "Error")


def assert_generic(body: bytes) -> None:
    text = body.decode()
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked into {text!r}"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path, sqlite_busy_timeout_s=0.2))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_a_failing_dependency_is_a_generic_500(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(SECRET)

    def broken_dependency() -> None:
        raise RuntimeError(SECRET)

    state = state_of(client)
    # What each route leans on first: the runner's capacity (submit), the task cache (read), the state (ready).
    monkeypatch.setattr(state.runner, "has_capacity", broken)
    monkeypatch.setattr(state.tasks, "get", broken)
    client.app.dependency_overrides[get_state] = broken_dependency  # type: ignore[attr-defined]
    for method, path in (("POST", "/predict"), ("GET", f"/task/{uuid.uuid4()}"), ("GET", "/health/ready")):
        resp = client.request(method, path, json=[REPORT] if method == "POST" else None)
        assert resp.status_code == 500, resp.text
        assert resp.headers["content-type"] == "application/json"
        assert resp.json() == {"detail": "internal error"}
        assert_generic(resp.content)
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    monkeypatch.undo()
    assert client.post("/predict", json=[REPORT]).status_code == 202


def test_a_locked_store_is_a_generic_503(client: TestClient) -> None:
    db_file = Path(state_of(client).settings.effective_database_url.removeprefix("sqlite:///"))
    locker = sqlite3.connect(db_file, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        for path in ("/predict", "/score"):
            resp = client.post(path, json=[REPORT])
            assert resp.status_code == 503, resp.text
            assert resp.headers["retry-after"]
            assert resp.json() == {"detail": "the store is unavailable; retry shortly"}
            assert_generic(resp.content)
    finally:
        locker.rollback()
        locker.close()
    assert client.post("/predict", json=[REPORT]).status_code == 202


def test_a_broken_schema_is_a_generic_error(client: TestClient) -> None:
    """A table gone from under the service (a botched manual migration): SQL errors stay in the log."""
    db_file = Path(state_of(client).settings.effective_database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db_file) as conn:
        conn.execute("ALTER TABLE jobs RENAME TO jobs_gone")
    for method, path in (("POST", "/predict"), ("GET", f"/task/{uuid.uuid4()}")):
        resp = client.request(method, path, json=[REPORT] if method == "POST" else None)
        assert resp.status_code in (500, 503), resp.text
        assert resp.json()["detail"] in ("internal error", "the store is unavailable; retry shortly")
        assert_generic(resp.content)
