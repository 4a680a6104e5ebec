"""Settings are validated at start-up, documented where declared, and listed in the docs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from reportscore.settings import Settings, settings_markdown
from tests.servers import VENV_BIN

ROOT = Path(__file__).resolve().parents[2]


def test_several_api_processes_on_sqlite_are_refused_with_a_fix() -> None:
    with pytest.raises(ValidationError, match="embedded mode is exactly one process"):
        Settings(api_processes=2)


def test_serve_refuses_more_workers_on_sqlite_and_says_why(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "reportscore"), "serve", "--workers", "2", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "exactly one" in result.stderr
    assert "REPORTSCORE_API_PROCESSES=1" in result.stderr.replace("\n", " ")
    assert not (tmp_path / "reportscore.db").exists()


def test_config_show_redacts_passwords(tmp_path: Path) -> None:
    settings = Settings(database_url="sqlite:////tmp/x.db", data_dir=tmp_path)
    assert settings.redacted()["effective_database_url"] == "sqlite:////tmp/x.db"
    result = subprocess.run(
        [str(VENV_BIN / "reportscore"), "config", "show"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"REPORTSCORE_DATABASE_URL": "postgresql+psycopg://app:s3cret@db:5432/rs", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout
    assert "postgresql+psycopg://app:***@db:5432/rs" in result.stdout


def test_every_setting_has_a_docstring_and_is_in_the_docs() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    assert docs == settings_markdown(), (
        "docs/configuration.md is stale: reportscore config docs > docs/configuration.md"
    )
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no docstring"
        assert f"REPORTSCORE_{name.upper()}" in docs, f"REPORTSCORE_{name.upper()} missing from docs/configuration.md"
    documented = set(re.findall(r"REPORTSCORE_([A-Z0-9_]+)", docs))
    assert documented <= {n.upper() for n in Settings.model_fields}, "docs name a setting that does not exist"


def test_cli_help_lists_every_command() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "reportscore"), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    for command in ("serve", "migrate", "train-reference", "config"):
        assert command in result.stdout
