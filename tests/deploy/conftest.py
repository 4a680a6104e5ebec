"""Fixtures of the deploy-file tests."""

from __future__ import annotations

import os

import pytest

from tests.infra.fixtures import pg_url, redis_url_and_prefix  # noqa: F401
from tests.infra.runtime_env import runtime_venv  # noqa: F401


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No REPORTSCORE_* variable of the test run leaks into the Settings a test builds."""
    for key in [key for key in os.environ if key.startswith("REPORTSCORE_")]:
        monkeypatch.delenv(key)
