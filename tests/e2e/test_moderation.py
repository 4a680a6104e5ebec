"""The moderator's API on the embedded deployment, served as a real process (SQLite, in-process workers)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from reportscore.moderation import service as moderation_service
from reportscore.storage.db import Database
from tests.moderation_scenarios import feedback_statuses_and_queue, queue_order_pagination_and_reasons
from tests.servers import ServiceProcess

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Database]]:
    data_dir = tmp_path_factory.mktemp("moderation") / "data"
    with ServiceProcess(data_dir) as service, httpx.Client(base_url=service.url, timeout=30) as http:
        db = Database(f"sqlite:///{data_dir / 'reportscore.db'}")
        try:
            yield http, db
        finally:
            db.dispose()


def test_queue_order_pagination_and_reasons(served: tuple[httpx.Client, Database]) -> None:
    queue_order_pagination_and_reasons(*served)


def test_feedback_statuses_and_queue(served: tuple[httpx.Client, Database]) -> None:
    feedback_statuses_and_queue(*served)


def test_openapi_documents_the_moderation_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    queue = spec["paths"]["/reports/queue"]["get"]
    limit = next(p for p in queue["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"], limit["schema"]["default"]) == (1, 500, 50)
    body = spec["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["maxItems"] == 1000
    assert body.get("examples") or body["schema"].get("examples")
    explain = spec["paths"]["/task/{task_id}"]["get"]["parameters"]
    assert any(p["name"] == "explain" for p in explain)
    for name in ("QueuePage", "FeedbackIn", "FeedbackResponse"):
        assert spec["components"]["schemas"][name].get("examples"), name


def test_bad_feedback_and_cursors_are_422_not_500(client: TestClient) -> None:
    big = 2**63
    for body in (
        [{"id": big, "outcome": "actioned", "reviewer": "x"}],
        [{"report_id": "a\x00b", "outcome": "actioned", "reviewer": "x"}],
        [{"id": 1, "outcome": "actioned", "reviewer": "x\x00"}],
    ):
        assert client.post("/feedback", json=body).status_code == 422
    huge = moderation_service.encode_cursor(score=0.5, report_id=big, abuse_type=None)
    assert client.get("/reports/queue", params={"cursor": huge}).status_code == 422
    assert client.get("/reports/queue", params={"abuse_type": "SPAM"}).status_code == 422
    assert client.get("/reports/queue").json() == {"items": [], "next_cursor": None}
