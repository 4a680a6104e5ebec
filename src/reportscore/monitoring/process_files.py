"""The files of Prometheus multiprocess mode (:mod:`reportscore.monitoring.multiproc`): where this process writes
them, and dropping the live-gauge files of processes that are gone. Like ``multiproc``, it imports
``prometheus_client`` only inside functions."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The shared directory when this process records in multiprocess mode, else None."""
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:
        return None
    configured = os.environ.get(ENV_VAR)
    if not configured:
        raise RuntimeError(f"prometheus_client is in multiprocess mode but {ENV_VAR} is not set")
    return Path(configured)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): trust kill()
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def mark_dead_processes(path: Path) -> list[int]:
    """Drop the live-gauge files of processes that exited without saying so (``kill -9``, a crashed pool child).

    Counters and histograms of dead processes stay: they only ever grow, and Prometheus must not see them shrink.
    """
    from prometheus_client import multiprocess

    dead: set[int] = set()
    for file in path.glob("gauge_live*_*.db"):
        pid_text = file.stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and not alive(int(pid_text)):
            dead.add(int(pid_text))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
    return sorted(dead)


def mark_this_process_dead() -> None:
    """This process is exiting cleanly: drop its live-gauge files now (multiprocess mode only)."""
    from prometheus_client import multiprocess

    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]
