"""Template placeholders (``change-me``, ``CHANGE_ME``) and empty passwords never reach a running deployment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reportscore.security import keys
from reportscore.settings import Settings, placeholder_secret_problem
from reportscore.storage.db import Database
from tests.conftest import make_settings

BROKER = "redis://127.0.0.1:6379/0"
PLACEHOLDERS = ["change-me", "CHANGE_ME", "Change-Me", "changeme", " change-me "]


@pytest.mark.parametrize("secret", [*PLACEHOLDERS, "", "   "])
def test_the_rule_names_placeholders_and_empty_secrets(secret: str) -> None:
    assert placeholder_secret_problem(secret) is not None


@pytest.mark.parametrize("secret", ["s3cr3t-Pa55", "change-me-please-no", "exchange-meters"])
def test_the_rule_lets_real_secrets_through(secret: str) -> None:
    assert placeholder_secret_problem(secret) is None


def _distributed(tmp_path: Path, **overrides: str) -> Settings:
    return make_settings(tmp_path, broker_url=BROKER, **overrides)


@pytest.mark.parametrize("password", ["change-me", "CHANGE_ME", ""])
def test_a_database_url_with_a_placeholder_or_empty_password_is_refused(tmp_path: Path, password: str) -> None:
    url = f"postgresql+psycopg://reportscore:{password}@postgres:5432/reportscore"
    with pytest.raises(ValidationError, match="REPORTSCORE_DATABASE_URL: the database password") as caught:
        _distributed(tmp_path, database_url=url)
    assert "secrets.token_urlsafe" in str(caught.value)


def test_a_database_url_with_a_real_password_or_none_is_accepted(tmp_path: Path) -> None:
    real = _distributed(tmp_path, database_url="postgresql+psycopg://reportscore:Xk3-9fq@postgres:5432/reportscore")
    assert real.mode == "distributed"
    no_password = _distributed(tmp_path, database_url="postgresql+psycopg://postgres@127.0.0.1:5432/reportscore")
    assert no_password.mode == "distributed"


@pytest.mark.parametrize("auth", ["admin:change-me", "admin:CHANGE_ME", "admin:"])
def test_flower_basic_auth_with_a_placeholder_or_empty_password_is_refused(tmp_path: Path, auth: str) -> None:
    with pytest.raises(ValidationError, match="REPORTSCORE_FLOWER_BASIC_AUTH: the password"):
        make_settings(tmp_path, flower_basic_auth=auth)


def test_flower_basic_auth_without_a_password_part_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must look like user:password"):
        make_settings(tmp_path, flower_basic_auth="admin")


def test_flower_basic_auth_with_a_real_password_is_accepted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, flower_basic_auth="ops:Xk3-9fq")
    assert settings.flower_basic_auth is not None


def test_the_environment_is_checked_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What every process (serve, worker, migrate, flower) builds first: Settings from REPORTSCORE_* variables."""
    monkeypatch.setenv("REPORTSCORE_FLOWER_BASIC_AUTH", "admin:CHANGE_ME")
    with pytest.raises(ValidationError, match="placeholder 'CHANGE_ME'"):
        Settings(data_dir=tmp_path)


@pytest.mark.parametrize("key", ["CHANGE_ME", "change-me", ""])
def test_the_bootstrap_api_key_follows_the_same_rule(tmp_path: Path, key: str) -> None:
    settings = make_settings(tmp_path, bootstrap_api_key=key)
    db = Database.from_settings(settings)
    try:
        with pytest.raises(keys.KeyError_, match="keys generate"):
            keys.ensure_bootstrap_key(db=db, settings=settings)
    finally:
        db.dispose()
