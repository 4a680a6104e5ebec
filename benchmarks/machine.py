"""What the benchmark ran on: CPU, memory, OS, package versions, git revision, server versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from benchmarks import services

HERE = Path(__file__).resolve().parent
PACKAGES = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic-core",
    "uvicorn",
    "uvloop",
    "httptools",
    "orjson",
    "sqlalchemy",
    "xgboost-cpu",
    "numpy",
    "celery",
    "kombu",
    "redis",
    "psycopg",
    "httpx2",
)


def machine_info() -> dict[str, Any]:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=False, timeout=10
            ).stdout.strip()
        except OSError:
            return ""

    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gb": mem_kb / 1024 / 1024,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": packages,
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "src")),
        "servers": services.server_versions(),
    }
