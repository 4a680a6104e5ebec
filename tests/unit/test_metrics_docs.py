"""docs/metrics.md lists exactly the metrics declared in reportscore.monitoring.metrics, with their type, labels and
unit (the way docs/configuration.md is kept in step with the settings)."""

from __future__ import annotations

import re
from pathlib import Path

from reportscore.monitoring.metrics import DECLARED

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
NO_UNIT = "\N{EN DASH}"
_ROW = re.compile(r"^\| `(reportscore_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \| ([^|]*) \|")


def documented() -> dict[str, tuple[str, tuple[str, ...], str]]:
    rows: dict[str, tuple[str, tuple[str, ...], str]] = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            name, kind, labels, unit = match.groups()
            assert name not in rows, f"{name} is documented twice"
            unit = unit.strip()
            rows[name] = (kind, tuple(re.findall(r"`([a-z_]+)`", labels)), "" if unit == NO_UNIT else unit)
    return rows


def test_every_declared_metric_is_documented_and_every_documented_one_exists() -> None:
    docs = documented()
    undocumented = sorted(set(DECLARED) - set(docs))
    assert not undocumented, f"declared in metrics.py but missing from docs/metrics.md: {undocumented}"
    unknown = sorted(set(docs) - set(DECLARED))
    assert not unknown, f"docs/metrics.md lists metrics that metrics.py does not declare: {unknown}"


def test_documented_type_labels_and_unit_match_the_declaration() -> None:
    docs = documented()
    for name, info in DECLARED.items():
        assert docs[name] == (info.type, info.labels, info.unit), name


def test_every_metric_has_help_text_and_a_name_that_says_its_unit() -> None:
    for name, info in DECLARED.items():
        assert len(info.help) > 20, name
        assert name.startswith("reportscore_")
        if info.type == "counter":
            assert name.endswith("_total"), name
        if info.unit:
            assert name.endswith(f"_{info.unit}"), name


def test_docs_mention_no_other_reportscore_metric_name() -> None:
    """Prose and examples name only real metrics (series suffixes of histograms allowed)."""
    for doc in (DOCS, DOCS.with_name("monitoring.md")):
        for token in set(re.findall(r"\breportscore_[a-z0-9_]+", doc.read_text(encoding="utf-8"))):
            base = re.sub(r"_(bucket|sum|count)$", "", token)
            assert token in DECLARED or base in DECLARED, f"{doc.name}: {token}"
