"""Settings are validated at start-up, documented where declared, and listed in the docs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx2 as httpx
import pytest
from pydantic import ValidationError

from reportscore.settings import Settings
from reportscore.settings_docs import settings_markdown
from tests.servers import VENV_BIN, ServiceProcess, run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_several_api_processes_on_sqlite_are_refused_with_a_fix() -> None:
    with pytest.raises(ValidationError, match="embedded mode is exactly one process"):
        Settings(api_processes=2)


def test_a_lease_renewal_interval_above_half_the_lease_is_refused_with_a_fix() -> None:
    with pytest.raises(ValidationError, match="Lower REPORTSCORE_LEASE_RENEW_INTERVAL_S"):
        Settings(lease_s=10, lease_renew_interval_s=6)
    assert Settings(lease_s=10, lease_renew_interval_s=5).lease_s == 10


def test_the_lease_does_not_follow_the_task_time_limit() -> None:
    assert Settings(task_time_limit_s=3000, visibility_timeout_s=7200).lease_s == Settings().lease_s == 15.0


DEPRECATED_WORKERS = "`serve --workers` is deprecated"


def test_serve_refuses_more_api_processes_on_sqlite_and_says_why(tmp_path: Path) -> None:
    result = run_cli(["serve", "--api-processes", "2", "--data-dir", str(tmp_path)], {})
    assert result.returncode == 2
    assert "api_processes=2" in result.stderr
    assert "exactly one" in result.stderr
    assert "REPORTSCORE_API_PROCESSES=1" in result.stderr.replace("\n", " ")
    assert DEPRECATED_WORKERS not in result.stderr
    assert not (tmp_path / "reportscore.db").exists()


def test_serve_old_workers_spelling_still_sets_api_processes_and_warns(tmp_path: Path) -> None:
    result = run_cli(["serve", "--workers", "2", "--data-dir", str(tmp_path)], {})
    assert result.returncode == 2
    assert DEPRECATED_WORKERS in result.stderr
    assert "--api-processes" in result.stderr
    assert "api_processes=2" in result.stderr  # the value reached the setting (and was refused on SQLite)
    both = run_cli(["serve", "--workers", "2", "--api-processes", "1", "--data-dir", str(tmp_path)], {})
    assert both.returncode == 2
    assert "give only --api-processes" in both.stderr


def test_serve_old_workers_spelling_serves(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path / "data", extra_args=("--workers", "1")) as service:
        assert httpx.get(f"{service.url}/heartbeat", timeout=10).json() == {"message": "Service Ok"}
    assert DEPRECATED_WORKERS in service.logs()


def test_every_documented_default_is_the_real_default() -> None:
    rows = {
        match[0]: match[1]
        for match in re.findall(r"^\| `REPORTSCORE_([A-Z0-9_]+)` \| `([^`]*)` \|", settings_markdown(), re.MULTILINE)
    }
    assert set(rows) == {name.upper() for name in Settings.model_fields}
    assert not [name for name, shown in rows.items() if "PydanticUndefined" in shown]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if name == "model_path":
            assert rows[name.upper()] == "the bundled reference model"
        elif isinstance(default, list):  # as the environment variable takes it: a JSON list
            assert json.loads(rows[name.upper()]) == default
        else:
            assert rows[name.upper()] == str(default), name


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
