"""What ships speaks of the product only: no tracker numbers, no paths of the machine it was written on, no notes
about what CI does not check; and the licence file matches the package's declared licence."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from tests.servers import REPO_ROOT

THIS_FILE = Path(__file__).resolve().relative_to(REPO_ROOT).as_posix()
SKIPPED_SUFFIXES = (".png", ".ubj", ".lock", ".min.js", ".min.css")
SKIPPED_DIRS = (".git/", ".venv/", ".tools/", "data/", "benchmarks/out/", "tests/deploy/schemas/")
# Built from parts so that this file does not match itself.
FORBIDDEN: dict[str, re.Pattern[str]] = {
    "a tracker number": re.compile(r"\bissues?\s+#?\d+\b|(?<![\w&/#'\"-])#\d{1,4}\b", re.IGNORECASE),
    "a development machine's path": re.compile(
        "|".join(re.escape(p) for p in ("/" + "work/", "/" + "root/", ".py" + "env/"))
    ),
    "a note about CI": re.compile("not " + r"checked\s+in\s+CI", re.IGNORECASE),
    "talk about a working session": re.compile(r"\b(?:this|previous|next|last)\s+" + "session" + r"\b", re.IGNORECASE),
}


def shipped_files() -> list[str]:
    """The files a clone of the repository holds (from git when it is a checkout, else every file on disk)."""
    if (REPO_ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    else:
        listed = [p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.rglob("*") if p.is_file()]
    return sorted(
        name
        for name in listed
        if not name.endswith(SKIPPED_SUFFIXES)
        and not name.startswith(SKIPPED_DIRS)
        and name != THIS_FILE
        and (REPO_ROOT / name).is_file()
    )


def test_the_scan_sees_code_docs_and_reports() -> None:
    files = shipped_files()
    for expected in (
        "README.md",
        "src/reportscore/cli/__init__.py",
        "benchmarks/RESULTS.md",
        "docs/models.md",
        "LICENSE",
    ):
        assert expected in files


def test_shipped_text_speaks_of_the_product_only() -> None:
    found = []
    for name in shipped_files():
        text = (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace")
        for what, pattern in FORBIDDEN.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{name}:{line}: {what}: {match.group(0)!r}")
    assert not found, "\n".join(found)


def test_the_patterns_catch_what_they_are_for() -> None:
    samples = {
        "a tracker number": "fixed in issue 7; see #12",
        "a development machine's path": "loaded from /" + "work/main/src",
        "a note about CI": "this variant is not " + "checked in CI",
        "talk about a working session": "as agreed in the previous " + "session",
    }
    for what, sample in samples.items():
        assert FORBIDDEN[what].search(sample), what
    for harmless in ("color: #fff", "we issue BEGIN ourselves", "session.commit()", "retries 3 times", "C#"):
        assert not any(p.search(harmless) for p in FORBIDDEN.values()), harmless


def test_licence_file_matches_the_declared_licence() -> None:
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "Apache-2.0"
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under ``command`` (a click command as typer builds it), as argv prefixes."""
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, (*path, name))
    return paths


def test_every_help_text_speaks_of_the_product_only() -> None:
    from reportscore.cli import app

    runner = CliRunner()
    paths = _command_paths(typer.main.get_command(app))
    assert ("models", "register") in paths
    found = []
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        for what, pattern in FORBIDDEN.items():
            found += [f"reportscore {' '.join(path)} --help: {what}: {m!r}" for m in pattern.findall(result.output)]
    assert not found, "\n".join(found)
