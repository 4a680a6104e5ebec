"""docs/models.md's walkthroughs, run as written against a real ``reportscore serve``: train with the feature
schema's encoding, save a model directory, register (admin key), promote, confirm the switch, roll back. Every
``# =>`` line is a line the commands must print, in that order."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import require
from tests.doc_scripts import bash_script, expected_output, marked, python_files, run_bash
from tests.servers import REPO_ROOT, ServiceProcess, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODELS_PAGE = REPO_ROOT / "docs" / "models.md"


def _admin_key(data_dir: Path) -> str:
    created = run_cli(
        ["keys", "create", "--tenant", "data-science", "--name", "walkthrough", "--scopes", "admin,submit,read"],
        {"REPORTSCORE_DATA_DIR": str(data_dir)},
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def _replay(walkthrough: str, tmp_path: Path, *, timeout_s: float) -> tuple[str, str]:
    """Run one walkthrough of the page in a fresh directory against a fresh service; returns (service URL, key)."""
    require(shutil.which("curl") is not None and shutil.which("jq") is not None, "curl and jq are needed")
    work = tmp_path / "work"
    work.mkdir()
    for name, code in python_files(MODELS_PAGE).items():
        (work / name).write_text(code)
    script = bash_script(marked(MODELS_PAGE, walkthrough))
    expected = expected_output(script)
    data_dir = tmp_path / "data"
    key = _admin_key(data_dir)
    with ServiceProcess(data_dir) as service:
        run = run_bash(
            script,
            env={"BASE": service.url, "KEY": key, "REPORTSCORE_DATA_DIR": str(data_dir)},
            cwd=work,
            timeout_s=timeout_s,
        )
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-4000:]}"
        assert run.stdout.splitlines() == expected, run.stdout
        with httpx.Client(base_url=service.url, headers={"X-API-Key": key}, timeout=30) as http:
            listed = http.get("/models").json()
    saved = {v["version"]: v for v in listed["versions"]}
    for version, directory in (("1.1.0", "model-1.1.0"), ("2.0.0", "model-2.0.0")):
        if version in saved:  # the registry stored exactly the artifact the page saved
            metadata = json.loads((work / directory / "metadata.json").read_text())
            assert saved[version]["sha256"] == metadata["sha256"]
    return service.url, key


def test_the_page_names_every_step() -> None:
    for walkthrough in ("xgboost", "keras"):
        script = bash_script(marked(MODELS_PAGE, walkthrough))
        for step in ("/health/ready", "/task/", "/metrics" if walkthrough == "xgboost" else "models promote"):
            assert step in script, (walkthrough, step)
        assert "rollback" in script
        assert len(expected_output(script)) >= 6
    assert {"train_xgboost.py", "check_scores.py", "train_keras.py"} <= set(python_files(MODELS_PAGE))


@pytest.mark.timeout(300)
def test_xgboost_walkthrough_as_the_page_tells_it(tmp_path: Path) -> None:
    _replay("xgboost", tmp_path, timeout_s=240)


@pytest.mark.tensorflow
@pytest.mark.timeout(480)
def test_keras_walkthrough_as_the_page_tells_it(tmp_path: Path) -> None:
    require(importlib.util.find_spec("tensorflow") is not None, "the tensorflow extra is needed")
    _replay("keras", tmp_path, timeout_s=420)
