"""What ``src/`` imports comes with the runtime install (the lock's closure of the project's dependencies, which
``scripts/bootstrap.sh`` without ``--dev`` and the Dockerfile install): the service must start where the test tools
are not installed. A package of an optional extra may only be imported inside a function (lazily), so that the
service starts without it."""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "reportscore"


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _lock_closure(kind: str) -> set[str]:
    """Distributions the lock installs for the project's runtime (``kind="runtime"``) or its optional extras."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    packages = {_normalise(p["name"]): p for p in lock["package"]}
    project = packages["reportscore"]
    if kind == "runtime":
        roots = project.get("dependencies", [])
    else:
        roots = [dep for deps in project.get("optional-dependencies", {}).values() for dep in deps]
    seen: set[str] = set()
    pending = [(_normalise(d["name"]), d.get("extra", [])) for d in roots]
    while pending:
        name, extras = pending.pop()
        package = packages[name]
        edges = list(package.get("dependencies", []))
        for extra in extras:
            edges += package.get("optional-dependencies", {}).get(extra, [])
        if name in seen and not extras:
            continue
        seen.add(name)
        pending += [(_normalise(d["name"]), d.get("extra", [])) for d in edges]
    return seen


def _imports(tree: ast.Module) -> Iterator[tuple[str, int, bool]]:
    """(top-level module, line, imported at module level) for every absolute import of a module."""
    lazy_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lazy_lines |= {n.lineno for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.split(".")[0], node.lineno, node.lineno not in lazy_lines


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.stmt)}
    return lines


def test_every_import_of_src_is_a_runtime_dependency_or_a_lazy_extra() -> None:
    runtime = _lock_closure("runtime")
    extras = _lock_closure("extras") - runtime
    distributions = packages_distributions()
    assert "xgboost-cpu" in runtime  # the lock was read
    assert "tensorflow-cpu" in extras
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_checking_lines(tree)
        for module, line, module_level in _imports(tree):
            if module in sys.stdlib_module_names or module == "reportscore" or line in typing_only:
                continue
            where = f"{path.relative_to(ROOT)}:{line}: {module}"
            names = {_normalise(d) for d in distributions.get(module, [])}
            if names & runtime:
                continue
            if names & extras:
                if module_level:
                    problems.append(f"{where} belongs to an optional extra and is imported at module level")
                continue
            problems.append(f"{where} ({', '.join(sorted(names)) or 'not installed'}) is not a runtime dependency")
    assert not problems, "\n".join(problems)
