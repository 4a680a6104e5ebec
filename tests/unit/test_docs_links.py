"""Every relative link of the README and of docs/ leads somewhere: the file exists and, for a Markdown anchor, the
heading does too."""

from __future__ import annotations

import re
from pathlib import Path

from tests.servers import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as dashes."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text(encoding="utf-8")), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_every_relative_link_resolves() -> None:
    assert len(PAGES) > 10
    problems = [problem for page in PAGES for problem in broken_links(page)]
    assert not problems, "\n".join(problems)


def test_the_anchor_rule_matches_githubs() -> None:
    assert "provisioning-a-key-in-a-deployment" in anchors(REPO_ROOT / "docs" / "security.md")
    assert "a-moderators-day" in anchors(REPO_ROOT / "docs" / "moderation.md")


def test_every_setting_the_pages_name_exists() -> None:
    from reportscore.settings import Settings

    known = {name.upper() for name in Settings.model_fields}
    unknown = {
        f"{page.name}: REPORTSCORE_{name}"
        for page in PAGES
        for name in re.findall(r"REPORTSCORE_([A-Z0-9_]+)", page.read_text(encoding="utf-8"))
        if name not in known
    }
    assert not unknown, sorted(unknown)
