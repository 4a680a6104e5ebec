"""Fixtures for tests that run the whole app (in-process over ASGI, or as a real server process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reportscore.api.deps import AppState
from reportscore.app import create_app
from tests.conftest import make_settings
from tests.infra.fixtures import pg_url, redis_url_and_prefix, s3_server

__all__ = ["pg_url", "redis_url_and_prefix", "s3_server"]


def app_client(tmp_path: Path, **overrides: Any) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, **overrides)))


def state_of(client: TestClient) -> AppState:
    state: AppState = client.app.state.rs  # type: ignore[attr-defined]
    return state


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path) as c:
        yield c
