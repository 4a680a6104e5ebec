"""A process's PostgreSQL connections are bounded by its budget (``database_max_connections``): under concurrent
load it never opens more, and a request that finds every connection busy for the pool timeout is answered 503."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from reportscore.api.errors import install_error_handlers
from reportscore.storage import migrate
from reportscore.storage.db import Database, StoreBusy

pytestmark = pytest.mark.integration

_OURS = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")


@pytest.fixture
def app_name() -> str:
    return f"rs-budget-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def budget_db(pg_url: str, app_name: str) -> Iterator[Database]:
    db = Database(pg_url, max_connections=3, pool_timeout_s=30, application_name=app_name)
    migrate.upgrade_to_head(db)
    yield db
    db.dispose()


def test_concurrent_load_never_opens_more_than_the_budget(budget_db: Database, app_name: str) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def work(_: int) -> None:
        for _ in range(5):
            with budget_db.read() as session:
                # counted from inside: this connection is open, and so is every other one of the process
                n = int(session.execute(_OURS, {"name": app_name}).scalar_one())
                session.execute(text("SELECT pg_sleep(0.01)"))
            with lock:
                seen.append(n)

    with ThreadPoolExecutor(max_workers=24) as pool:
        list(pool.map(work, range(24)))
    assert len(seen) == 24 * 5
    assert max(seen) == 3  # 24 threads at once used the whole budget, and never more
    with budget_db.read() as session:
        assert session.execute(_OURS, {"name": app_name}).scalar_one() == 3  # kept for reuse, none opened beyond


def test_a_request_that_waits_out_the_pool_timeout_is_answered_503(pg_url: str, app_name: str) -> None:
    db = Database(pg_url, max_connections=1, pool_timeout_s=0.2, application_name=app_name)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/read")
    def read() -> dict[str, int]:
        with db.read() as session:
            return {"one": int(session.execute(text("SELECT 1")).scalar_one())}

    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/read").json() == {"one": 1}
            with db.write() as held:  # the process's only connection, held for the whole request
                held.execute(text("SELECT 1"))
                with pytest.raises(StoreBusy) as caught, db.read() as session:
                    session.execute(text("SELECT 1"))
                assert isinstance(caught.value, OperationalError)
                answer = client.get("/read")
            assert answer.status_code == 503
            assert answer.headers["Retry-After"] == "1"
            assert client.get("/read").status_code == 200  # served again once the connection is free
    finally:
        db.dispose()
