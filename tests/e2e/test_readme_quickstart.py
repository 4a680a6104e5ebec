"""The README's quick start as a newcomer pastes it: the run and test commands are the Makefile's, and the curl
example, run as written against a real ``reportscore serve``, answers what the README shows."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reportscore.scoring.registry import formats_with, load_model_dir
from reportscore.settings import Settings
from tests.conftest import require
from tests.doc_scripts import Block, blocks, run_bash
from tests.servers import REPO_ROOT, ServiceProcess

README = REPO_ROOT / "README.md"
README_ADDRESS = "http://127.0.0.1:8081"
# Fields that differ from run to run; every other field of the answer is shown exactly as the service answers it.
VARYING = {"task_id", "created_at", "started_at", "finished_at", "timings"}


def quickstart_block(name: str) -> Block:
    """The fenced block right after ``<!-- quickstart: name -->`` in the README."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- quickstart: {re.escape(name)} -->\n(```.*?^```\n)", text, re.DOTALL | re.MULTILINE)
    assert match, f"README has no quickstart block {name!r}"
    (block,) = blocks(match.group(1))
    return block


def test_the_run_and_test_commands_are_the_makefiles() -> None:
    assert quickstart_block("run") == Block("bash", "make run\n")
    assert quickstart_block("test") == Block("bash", "make test\n")
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^run: ", makefile, re.MULTILINE)
    assert re.search(r"^test: ", makefile, re.MULTILINE)
    assert "HOST ?= 127.0.0.1" in makefile  # the address the example uses
    assert "PORT ?= 8081" in makefile


def test_the_readme_stays_short() -> None:
    assert len(README.read_text().splitlines()) <= 200


def _shown_answer() -> dict[str, Any]:
    block = quickstart_block("answer")
    assert block.lang == "json"
    answer: dict[str, Any] = json.loads(block.code)
    return answer


@pytest.mark.e2e
def test_the_curl_example_answers_what_the_readme_shows(tmp_path: Path) -> None:
    require(shutil.which("curl") is not None and shutil.which("jq") is not None, "curl and jq are needed")
    example = quickstart_block("example")
    assert example.lang == "bash"
    assert example.code.count(README_ADDRESS) == 2
    shown = _shown_answer()
    with ServiceProcess(tmp_path / "data") as service:
        run = run_bash(example.code.replace(README_ADDRESS, service.url), env={}, cwd=tmp_path, timeout_s=60)
    assert run.returncode == 0, run.stderr
    answered = json.loads(run.stdout)
    assert uuid.UUID(answered["task_id"]).version == 4
    assert set(answered) == set(shown)
    assert {k: v for k, v in answered.items() if k not in VARYING} == {
        k: v for k, v in shown.items() if k not in VARYING
    }
    assert answered["status"] == "SUCCESS"
    # ... and those are the bundled reference model's scores for the example's two reports
    reports = json.loads(example.code.split("-d '", 1)[1].split("'", 1)[0])
    reference = load_model_dir(Settings().model_path, formats=formats_with([]))
    expected = reference.model.predict(reference.schema.encode_reports(reports))
    np.testing.assert_allclose(shown["score"], expected, atol=1e-6)
