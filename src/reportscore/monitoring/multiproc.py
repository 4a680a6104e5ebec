"""Prometheus multiprocess mode for the processes one command starts.

``reportscore serve`` may run several uvicorn API processes on one port, and ``reportscore worker`` is a Celery
main process with prefork pool processes. Whichever process answers a scrape must report the sum of all of them, so
every process of one command writes its samples to memory-mapped files in one directory
(``PROMETHEUS_MULTIPROC_DIR``) and the process answering ``/metrics`` merges them (``prometheus_client.multiprocess``).
Across machines and commands nothing is shared: Prometheus scrapes each API and each worker endpoint and sums in
PromQL.

``prometheus_client`` chooses how it stores values when it is imported, so ``enable`` must run before anything
imports it; this module itself only imports it inside functions.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reportscore.monitoring.process_files import (
    ENV_VAR,
    alive,
    mark_dead_processes,
    mark_this_process_dead,
    multiprocess_dir,
)

log = logging.getLogger(__name__)

__all__ = [
    "ENV_VAR",
    "MetricsDir",
    "enable",
    "mark_dead_processes",
    "mark_this_process_dead",
    "multiprocess_dir",
    "serve_metrics",
]

_TEMP_PREFIX = "reportscore-metrics-"
_PREFIXES = ("counter_", "gauge_", "histogram_", "summary_")


@dataclass
class MetricsDir:
    """The directory the processes of this command share; ``close`` removes it when this process created it."""

    path: Path
    owned: bool
    owner_pid: int = field(default_factory=os.getpid)

    def close(self) -> None:
        if os.getpid() != self.owner_pid:  # a forked pool process inherited this object: not its to remove
            return
        if os.environ.get(ENV_VAR) == str(self.path):
            del os.environ[ENV_VAR]
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


def enable(configured: Path | None) -> MetricsDir:
    """Put this process (and the children it starts afterwards) in multiprocess mode, in an emptied directory.

    The directory is ``configured`` (``REPORTSCORE_METRICS_MULTIPROC_DIR``), else an inherited
    ``PROMETHEUS_MULTIPROC_DIR``, else a new private temporary directory removed by ``close`` (and, when the command
    was killed before it could, by the next command's start). Files left by an earlier run are deleted: their
    counters belong to processes that no longer exist.
    """
    client = sys.modules.get("prometheus_client.values")
    if client is not None and getattr(client, "ValueClass", None) is getattr(client, "MutexValue", None):
        raise RuntimeError("prometheus_client was imported before multiprocess mode was enabled")
    owned = False
    if configured is not None:
        path = configured.resolve()
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR]).resolve()
    else:
        _sweep_abandoned(Path(tempfile.gettempdir()))
        path = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-"))
        owned = True
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        if stale.name.startswith(_PREFIXES):
            stale.unlink(missing_ok=True)
    os.environ[ENV_VAR] = str(path)
    log.debug("prometheus multiprocess mode", extra={"metrics_dir": str(path)})
    return MetricsDir(path=path, owned=owned)


def _sweep_abandoned(tmp: Path) -> None:
    """Remove the temporary directories of commands that died without removing theirs (SIGKILL, a re-raised
    SIGTERM)."""
    for candidate in tmp.glob(f"{_TEMP_PREFIX}*-*"):
        owner = candidate.name.removeprefix(_TEMP_PREFIX).split("-", 1)[0]
        if candidate.is_dir() and owner.isdigit() and not alive(int(owner)):
            shutil.rmtree(candidate, ignore_errors=True)


def serve_metrics(host: str, port: int) -> Callable[[], None] | None:
    """Serve this process tree's metrics on ``http://host:port/metrics`` from a background thread.

    Used by ``reportscore worker``: the Celery main process answers for all its pool processes. Returns a function
    that stops the server, or None when the port could not be bound (the worker keeps scoring without it).
    """
    from prometheus_client import start_http_server

    from reportscore.monitoring.exposition import exposition_registry
    from reportscore.monitoring.metrics import set_workers_up

    set_workers_up("celery", 0)  # this process scores nothing, but keeps the series (at 0) when no pool process lives
    try:
        server, thread = start_http_server(port, addr=host, registry=exposition_registry())
    except OSError as exc:
        log.warning(
            "worker metrics endpoint not started; set REPORTSCORE_WORKER_METRICS_PORT to a free port (0 = off)",
            extra={"host": host, "port": port, "error": str(exc)},
        )
        return None
    log.info("worker metrics endpoint listening", extra={"host": host, "port": server.server_port})

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
