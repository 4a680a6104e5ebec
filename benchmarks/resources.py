"""Resource sampling of the service's processes (peak RSS, CPU) and of the load generator itself, from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _read_status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def process_tree(roots: Sequence[int]) -> list[int]:
    """``roots`` and all their live descendants (scans /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [p for p in roots if Path(f"/proc/{p}").exists()]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


class ResourceSampler:
    """Samples the summed VmRSS of a process tree every ``interval_s``, and its CPU time over the run."""

    def __init__(self, roots: Sequence[int], interval_s: float = 0.2) -> None:
        self.roots = list(roots)
        self.interval_s = interval_s
        self.peak_rss_kb = 0
        self.pids: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self._cpu0: dict[int, int] = {}
        self._t0 = 0.0

    def _cpu(self) -> dict[int, int]:
        return {pid: _cpu_ticks(pid) for pid in self.pids}

    def start(self) -> None:
        self.pids = process_tree(self.roots) if self.roots else []
        self._cpu0 = self._cpu()
        self._machine0 = _machine_ticks()
        self._t0 = time.monotonic()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        last_scan = time.monotonic()
        while True:
            if time.monotonic() - last_scan > 2.0:
                known = set(self.pids)
                for pid in process_tree(self.roots):
                    if pid not in known:
                        self.pids.append(pid)
                        self._cpu0[pid] = 0
                last_scan = time.monotonic()
            total = sum(_read_status_kb(pid, "VmRSS") for pid in self.pids)
            self.peak_rss_kb = max(self.peak_rss_kb, total)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        elapsed = time.monotonic() - self._t0
        cpu1 = self._cpu()
        ticks = sum(max(0, cpu1.get(pid, 0) - self._cpu0.get(pid, 0)) for pid in self.pids)
        hz = os.sysconf("SC_CLK_TCK")
        busy1, total1 = _machine_ticks()
        busy0, total0 = getattr(self, "_machine0", (0, 0))
        ncpu = os.cpu_count() or 1
        machine_pct = 100 * ncpu * (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
        return {
            "machine_cpu_pct": round(machine_pct, 1) if machine_pct is not None else None,
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1) if self.pids else None,
            "hwm_rss_mb": round(sum(_read_status_kb(p, "VmHWM") for p in self.pids) / 1024, 1) if self.pids else None,
            "service_cpu_pct": round(100 * ticks / hz / elapsed, 1) if self.pids and elapsed > 0 else None,
            "service_processes": len(self.pids),
        }


async def wait_idle(pids: Sequence[int], *, below_pct: float = 10.0, max_s: float = 60.0) -> float:
    """Wait until the process tree of ``pids`` uses less than ``below_pct`` CPU over half a second (the backlog
    of the previous workload is done), at most ``max_s``; returns the seconds waited."""
    t0 = time.monotonic()
    hz = os.sysconf("SC_CLK_TCK")
    while time.monotonic() - t0 < max_s:
        tree = process_tree(pids)
        before = sum(_cpu_ticks(p) for p in tree)
        await asyncio.sleep(0.5)
        used = sum(_cpu_ticks(p) for p in tree) - before
        if 100 * used / hz / 0.5 < below_pct:
            break
    return time.monotonic() - t0


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
