"""The moderator's API on the embedded deployment, served as a real process (SQLite, in-process workers)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest

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
