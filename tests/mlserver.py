"""MLServer serving the bundled reference model (the benchmark's anchor machinery), for tests: its cached venv or
a skip (a failure under CI=true) when it cannot be built, and a server that can be killed and started again on the
same port."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import mlserver_anchor
from benchmarks.services import HttpServer

from tests.conftest import require


def index_reachable() -> bool:
    """Whether the package index answers (to build the MLServer venv when it is not cached)."""
    index = os.environ.get("UV_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"
    parts = urlsplit(index)
    try:
        with socket.create_connection((parts.hostname or "pypi.org", parts.port or 443), timeout=5):
            return True
    except OSError:
        return False


def require_mlserver() -> None:
    """Skip (fail under CI=true) when MLServer's venv is neither cached nor buildable."""
    if not (mlserver_anchor.venv_dir() / ".complete").exists():
        require(index_reachable(), "the MLServer venv is not cached and the package index is unreachable")


@contextmanager
def mlserver(out: Path) -> Iterator[HttpServer]:
    """MLServer serving the reference model's ``predict_proba`` (``mlserver_anchor.MODEL_NAME``), ready."""
    require_mlserver()
    with mlserver_anchor.serving(out, None) as server:
        yield server


def kill(server: HttpServer) -> None:
    """SIGKILL MLServer and its inference worker (a killed parent does not take its children with it)."""
    children = _children(server.pid)
    server.stop(timeout_s=0, sig=signal.SIGKILL)
    for pid in children:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def restart(server: HttpServer, timeout_s: float = 120.0) -> None:
    """Start the killed server again on its port and wait until it is ready."""
    server.start()
    server.wait_ready(timeout_s=timeout_s)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found
