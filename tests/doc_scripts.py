"""Commands of the README and docs/, taken from the page itself and run as written: fenced ``bash`` blocks, the
``# => `` lines inside them (what the commands above must print), and ``python`` blocks saved as the file their first
line names (``# file: train.py``)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.servers import VENV_BIN

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILE_HEADER = re.compile(r"^# file: (\S+)\n")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str


def blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order."""
    return [Block(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def section(page: Path, heading: str) -> str:
    """The text under ``heading`` (a whole Markdown heading line), up to the next heading of the same level."""
    text = page.read_text(encoding="utf-8")
    level = heading.split(" ", 1)[0]
    assert f"\n{heading}\n" in f"\n{text}", f"{page.name} has no {heading!r} section"
    body = f"\n{text}".split(f"\n{heading}\n", 1)[1]
    return body.split(f"\n{level} ", 1)[0]


def marked(page: Path, name: str) -> str:
    """The text between ``<!-- walkthrough: name -->`` and the next ``<!-- /walkthrough -->``."""
    text = page.read_text(encoding="utf-8")
    match = re.search(rf"<!-- walkthrough: {re.escape(name)} -->\n(.*?)<!-- /walkthrough -->", text, re.DOTALL)
    assert match, f"{page.name} has no walkthrough {name!r}"
    return match.group(1)


def bash_script(text: str) -> str:
    """The ``bash`` blocks of ``text``, joined in order into one script."""
    scripts = [b.code for b in blocks(text) if b.lang == "bash"]
    assert scripts, "no bash block"
    return "\n".join(scripts)


def python_files(page: Path) -> dict[str, str]:
    """The ``python`` blocks of a page that name their file, by file name."""
    files = {}
    for block in blocks(page.read_text(encoding="utf-8")):
        header = FILE_HEADER.match(block.code)
        if block.lang == "python" and header:
            files[header.group(1)] = block.code
    return files


def expected_output(script: str) -> list[str]:
    """The ``# => `` lines of a script: what it must print, in order."""
    return [line.removeprefix("# => ") for line in script.splitlines() if line.startswith("# => ")]


def run_bash(script: str, *, env: dict[str, str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``bash -euo pipefail`` as a reader would, the project's virtualenv first on PATH."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
