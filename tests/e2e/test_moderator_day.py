"""README's "A moderator's day", run as written (bash, curl, jq) against a real served process: every ``# =>`` line
of the script is a line its commands must print, in that order."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require
from tests.servers import REPO_ROOT, ServiceProcess

pytestmark = [pytest.mark.e2e]

SECTION = "## A moderator's day"


def moderator_day_script() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, f"README's {SECTION!r} section has no bash block"
    return match.group(1)


def test_script_shows_every_step() -> None:
    script = moderator_day_script()
    for step in ("/submit", "/task/", "/reports/queue", "cursor=", "/feedback"):
        assert step in script


def test_a_moderators_day_as_the_readme_tells_it(tmp_path: Path) -> None:
    require(shutil.which("curl") is not None and shutil.which("jq") is not None, "curl and jq are needed")
    script = moderator_day_script()
    expected = [line.removeprefix("# => ") for line in script.splitlines() if line.startswith("# => ")]
    assert len(expected) >= 6
    with ServiceProcess(tmp_path / "data") as service:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "BASE": service.url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    printed = run.stdout.splitlines()
    assert printed == expected, "\n".join(printed)
