"""The runtime-only environment (scripts/bootstrap.sh without --dev) runs the commands users run, and an optional
extra adds only itself."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require
from tests.infra.runtime_env import BOOTSTRAP, DEV_ONLY_MODULES, ROOT, UV


def _run(venv: Path, args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPORTSCORE_")}
    env["REPORTSCORE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [str(venv / "bin" / "reportscore"), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_models_commands_run_from_the_runtime_environment(runtime_venv: Path, tmp_path: Path) -> None:
    """serve, worker, migrate and flower run from it in the deployment stand-ins (tests/deploy); here the rest."""
    data = tmp_path / "data"
    migrated = _run(runtime_venv, ["migrate"], data)
    assert migrated.returncode == 0, migrated.stderr
    listed = _run(runtime_venv, ["models", "list"], data)
    assert listed.returncode == 0, listed.stderr
    assert "1.0.0" in listed.stdout
    shown = _run(runtime_venv, ["models", "show", "1.0.0"], data)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["is_champion"] is True


@pytest.mark.slow
def test_an_extra_adds_itself_and_nothing_of_the_dev_group(tmp_path: Path) -> None:
    require(UV.is_file(), f"{UV} is missing: run scripts/bootstrap.sh first")
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}
    done = subprocess.run(
        ["bash", str(BOOTSTRAP), "--extra", "tensorflow"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probe = "import importlib.util, sys; print(*[m for m in sys.argv[1:] if importlib.util.find_spec(m)])"
    found = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-c", probe, "tensorflow", *DEV_ONLY_MODULES],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert found == ["tensorflow"]


def test_bootstrap_refuses_an_unknown_option() -> None:
    done = subprocess.run(["bash", str(BOOTSTRAP), "--extra"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--extra needs a name" in done.stderr
