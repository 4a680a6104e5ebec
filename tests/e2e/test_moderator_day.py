"""docs/moderation.md's "A moderator's day", run as written (bash, curl, jq) against a real served process: every
``# =>`` line of the script is a line its commands must print, in that order."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import require
from tests.doc_scripts import bash_script, expected_output, run_bash, section
from tests.servers import REPO_ROOT, ServiceProcess

pytestmark = [pytest.mark.e2e]

MODERATION_PAGE = REPO_ROOT / "docs" / "moderation.md"
SECTION = "## A moderator's day"


def moderator_day_script() -> str:
    return bash_script(section(MODERATION_PAGE, SECTION))


def test_script_shows_every_step() -> None:
    script = moderator_day_script()
    for step in ("/submit", "/task/", "/reports/queue", "cursor=", "/feedback"):
        assert step in script


def test_a_moderators_day_as_the_page_tells_it(tmp_path: Path) -> None:
    require(shutil.which("curl") is not None and shutil.which("jq") is not None, "curl and jq are needed")
    script = moderator_day_script()
    expected = expected_output(script)
    assert len(expected) >= 6
    with ServiceProcess(tmp_path / "data") as service:
        run = run_bash(script, env={"BASE": service.url}, cwd=tmp_path, timeout_s=120)
    assert run.returncode == 0, run.stderr
    printed = run.stdout.splitlines()
    assert printed == expected, "\n".join(printed)
