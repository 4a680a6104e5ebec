"""Shared fixtures. Every test uses its own data directory; nothing touches shared state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reportscore.settings import Settings
from reportscore.storage import migrate
from reportscore.storage.db import Database

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip with a clear reason on a developer machine; fail under CI=true, where nothing may be missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", **overrides)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """A fresh SQLite store built by the migrations (never ``create_all``)."""
    database = Database.from_settings(settings)
    migrate.upgrade_to_head(database)
    yield database
    database.dispose()
