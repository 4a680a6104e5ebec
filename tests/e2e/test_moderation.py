"""The moderator's API on the embedded deployment, served as a real process (SQLite, in-process workers)."""

from __future__ import annotations

import json
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
    items = body["schema"]["items"]["oneOf"]  # exactly one of id or report_id, in the schema
    assert items == [{"$ref": "#/components/schemas/FeedbackById"}, {"$ref": "#/components/schemas/FeedbackByReportId"}]
    for name in ("QueuePage", "FeedbackById", "FeedbackByReportId", "FeedbackResponse"):
        assert spec["components"]["schemas"][name].get("examples"), name
    by_id, by_report_id = (spec["components"]["schemas"][n] for n in ("FeedbackById", "FeedbackByReportId"))
    assert by_id["additionalProperties"] is False
    assert by_report_id["additionalProperties"] is False
    assert "id" in by_id["required"]
    assert "report_id" not in by_id["properties"]
    assert "report_id" in by_report_id["required"]
    assert "id" not in by_report_id["properties"]
    cursor = next(p for p in queue["parameters"] if p["name"] == "cursor")
    assert cursor["schema"]["anyOf"][0]["pattern"] == moderation_service.CURSOR_PATTERN


def test_bad_feedback_and_cursors_are_422_not_500(client: TestClient) -> None:
    big = 2**63
    for body in (
        [{"id": big, "outcome": "actioned", "reviewer": "x"}],
        [{"id": 2**53, "outcome": "actioned", "reviewer": "x"}],
        [{"report_id": "a\x00b", "outcome": "actioned", "reviewer": "x"}],
        [{"id": 1, "outcome": "actioned", "reviewer": "x\x00"}],
        [{"report_id": "\ud800", "outcome": "actioned", "reviewer": "x"}],
        [{"id": 1, "outcome": "actioned", "reviewer": "a\udfffb"}],
    ):
        raw = json.dumps(body)  # keeps a lone surrogate as its \u escape
        resp = client.post("/feedback", content=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 422, (body, resp.text)
    huge = moderation_service.encode_cursor(score=0.5, report_id=big)
    assert client.get("/reports/queue", params={"cursor": huge}).status_code == 422
    assert client.get("/reports/queue", params={"abuse_type": "SPAM"}).status_code == 422
    assert client.get("/reports/queue").json() == {"items": [], "next_cursor": None}
