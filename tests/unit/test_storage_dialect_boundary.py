"""Database dialects are storage's business: outside ``reportscore/storage`` no code asks which database it runs on
(``is_sqlite``, ``dialect``, a comparison with "sqlite" / "postgresql"); it asks ``Database`` for a capability or
calls a storage function. The few sites allowed are listed below, each with its reason; a listed site that no
longer exists fails the test too, so the list only shrinks."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import reportscore

PACKAGE = Path(reportscore.__file__).parent
_NAMES = re.compile(r"^(is_sqlite|is_postgres\w*|dialect|dialect_name)$")
_DIALECT_WORDS = {"sqlite", "postgresql", "postgres"}

ALLOWED: dict[tuple[str, str], str] = {
    # the settings validate the URL before any Database exists (which modes a SQLite URL can serve)
    ("settings.py", "def is_sqlite(self) -> bool:"): "URL validation",
    ("settings.py", 'return self.effective_database_url.startswith("sqlite")'): "URL validation",
    ("settings_checks.py", "if settings.is_sqlite and settings.api_processes > 1:"): "URL validation",
    ("settings_checks.py", "if settings.is_sqlite and settings.broker_url is not None:"): "URL validation",
}


def _dialect_lines(source: str) -> set[int]:
    """Lines where code (not a comment or docstring) names a dialect question."""
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and _NAMES.match(tok.string):
            lines.add(tok.start[0])
        elif tok.type == tokenize.STRING:
            try:
                value = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, str) and value.lower() in _DIALECT_WORDS:
                lines.add(tok.start[0])
    return lines


def _sites() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("storage/"):
            continue
        source = path.read_text()
        text_lines = source.splitlines()
        found.extend((rel, text_lines[n - 1].strip()) for n in sorted(_dialect_lines(source)))
    return found


def _listed(site: tuple[str, str], listing: dict[tuple[str, str], str]) -> tuple[str, str] | None:
    rel, code = site
    return next((key for key in listing if rel.startswith(key[0]) and code == key[1]), None)


def test_the_scan_finds_dialect_branches() -> None:
    assert _dialect_lines("if db.is_sqlite:\n    pass\n") == {1}
    assert _dialect_lines('x = conn.dialect.name == "postgresql"\n') == {1}
    assert _dialect_lines('if name == "sqlite":\n    pass\n') == {1}
    assert _dialect_lines('# is_sqlite in a comment\n"""a sqlite docstring"""\nsqlite_synchronous = 1\n') == set()


def test_no_dialect_branch_outside_storage_but_the_listed_ones() -> None:
    sites = _sites()
    unlisted = [site for site in sites if _listed(site, ALLOWED) is None]
    assert unlisted == [], "ask Database for a capability, or add a storage function, instead"
    used = {_listed(site, ALLOWED) for site in sites}
    stale = [key for key in ALLOWED if key not in used]
    assert stale == [], "these sites are gone: remove them from the list"
