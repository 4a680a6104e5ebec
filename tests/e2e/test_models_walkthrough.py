"""docs/models.md's walkthroughs, run as written against a real deployment: train with the feature schema's
encoding, save a model directory, register (admin key), promote, confirm the switch, roll back; the Keras one also
shadows the network behind the XGBoost champion, records a day's outcomes and compares, in both deployments
(embedded ``reportscore serve``; API and Celery worker on PostgreSQL and Redis). Every ``# =>`` line is a line the
commands must print, in that order."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import require
from tests.doc_scripts import bash_script, expected_output, marked, python_files, run_bash
from tests.integration.cluster import Cluster
from tests.servers import REPO_ROOT, ServiceProcess, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODELS_PAGE = REPO_ROOT / "docs" / "models.md"


def _admin_key(env: dict[str, str]) -> str:
    created = run_cli(
        [
            "keys",
            "create",
            "--tenant",
            "data-science",
            "--name",
            "walkthrough",
            "--scopes",
            "admin,submit,read,feedback",
        ],
        env,
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


@contextlib.contextmanager
def _embedded(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``reportscore serve`` on a fresh data directory: (its URL, the environment the CLI needs to reach it)."""
    env = {"REPORTSCORE_DATA_DIR": str(tmp_path / "data")}
    with ServiceProcess(tmp_path / "data") as service:
        yield service.url, env


@contextlib.contextmanager
def _distributed(tmp_path: Path, pg_url: str, redis: tuple[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """``reportscore migrate``, one API process and one Celery worker (two pool processes) on PostgreSQL and Redis."""
    cluster = Cluster(work_dir=tmp_path, database_url=pg_url, broker_url=redis[0], prefix=redis[1])
    try:
        cluster.migrate()
        api = cluster.start_api()
        cluster.start_worker(concurrency=2)
        yield api.url, cluster.env
    finally:
        cluster.stop()


def _replay(
    walkthrough: str,
    tmp_path: Path,
    deployment: contextlib.AbstractContextManager[tuple[str, dict[str, str]]],
    *,
    timeout_s: float,
) -> None:
    """Run one walkthrough of the page in a fresh directory against a fresh deployment."""
    require(shutil.which("curl") is not None and shutil.which("jq") is not None, "curl and jq are needed")
    work = tmp_path / "work"
    work.mkdir()
    for name, code in python_files(MODELS_PAGE).items():
        (work / name).write_text(code)
    script = bash_script(marked(MODELS_PAGE, walkthrough))
    expected = expected_output(script)
    with deployment as (url, env):
        key = _admin_key(env)
        run = run_bash(script, env={"BASE": url, "KEY": key, **env}, cwd=work, timeout_s=timeout_s)
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-4000:]}"
        assert run.stdout.splitlines() == expected, run.stdout
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as http:
            listed = http.get("/models").json()
    saved = {v["version"]: v for v in listed["versions"]}
    for version, directory in (("1.1.0", "model-1.1.0"), ("2.0.0", "model-2.0.0")):
        if version in saved:  # the registry stored exactly the artifact the page saved
            metadata = json.loads((work / directory / "metadata.json").read_text())
            assert saved[version]["sha256"] == metadata["sha256"]


def test_the_page_names_every_step() -> None:
    for walkthrough in ("xgboost", "keras"):
        script = bash_script(marked(MODELS_PAGE, walkthrough))
        steps = ["/health/ready", "/task/", "/metrics" if walkthrough == "xgboost" else "models promote"]
        if walkthrough == "keras":
            steps += ["models shadow 2.0.0", "/feedback", "/models/compare", "--require-better"]
        for step in steps:
            assert step in script, (walkthrough, step)
        assert "rollback" in script
        assert len(expected_output(script)) >= 6
    assert {"train_xgboost.py", "check_scores.py", "train_keras.py", "day_of_reports.py"} <= set(
        python_files(MODELS_PAGE)
    )


@pytest.mark.timeout(300)
def test_xgboost_walkthrough_as_the_page_tells_it(tmp_path: Path) -> None:
    _replay("xgboost", tmp_path, _embedded(tmp_path), timeout_s=240)


def _need_tensorflow() -> None:
    require(importlib.util.find_spec("tensorflow") is not None, "the tensorflow extra is needed")


@pytest.mark.tensorflow
@pytest.mark.timeout(480)
def test_keras_walkthrough_embedded(tmp_path: Path) -> None:
    _need_tensorflow()
    _replay("keras", tmp_path, _embedded(tmp_path), timeout_s=420)


@pytest.mark.tensorflow
@pytest.mark.integration
@pytest.mark.timeout(480)
def test_keras_walkthrough_distributed(tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]) -> None:
    _need_tensorflow()
    _replay("keras", tmp_path, _distributed(tmp_path, pg_url, redis_url_and_prefix), timeout_s=420)
