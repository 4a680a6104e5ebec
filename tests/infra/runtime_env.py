"""A virtual environment with the runtime dependencies only, made from the lock by the project's own install script.

It is what the Dockerfile, ``make run`` and every container of the deployments get (``scripts/bootstrap.sh``
without ``--dev``): a test that runs a command from it proves the command needs nothing from the dev group.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "scripts" / "bootstrap.sh"
UV = ROOT / ".tools" / "bin" / "uv"
# Packages of the dev group only: none of them may be importable from the runtime environment.
DEV_ONLY_MODULES = ("pytest", "jsonschema", "kubernetes_validate", "moto", "playwright", "skl2onnx")


def build_runtime_env(target: Path) -> Path:
    """``UV_PROJECT_ENVIRONMENT=<target> scripts/bootstrap.sh`` (runtime dependencies, ``uv sync --frozen
    --no-dev``); returns ``target``. Fails with uv's output when the install fails."""
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(target)}
    done = subprocess.run(
        ["bash", str(BOOTSTRAP)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"runtime install failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    leaked = subprocess.run(
        [str(target / "bin" / "python"), "-c", _FIND_MODULES, *DEV_ONLY_MODULES],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert not leaked, f"dev-only packages in the runtime environment: {leaked}"
    return target


_FIND_MODULES = "import importlib.util, sys; print(*[m for m in sys.argv[1:] if importlib.util.find_spec(m)])"


@pytest.fixture(scope="session")
def runtime_venv() -> Iterator[Path]:
    """The runtime-only environment, built once per test session (uv's cache makes it take about a second).

    It lives under /var/tmp rather than /tmp so that a container stand-in can mount its own ``/tmp`` without
    hiding it; it is readable by every uid (the stand-ins run as the image's non-root user).
    """
    require(UV.is_file(), f"{UV} is missing: run scripts/bootstrap.sh first")
    base = Path(tempfile.mkdtemp(prefix="reportscore-runtime-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        yield build_runtime_env(base / "venv")
    finally:
        shutil.rmtree(base, ignore_errors=True)
