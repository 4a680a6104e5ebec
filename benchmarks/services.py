"""Start and stop what the benchmark measures: the floor app, the embedded service, and a distributed deployment
(API + workers on the shared PostgreSQL and Redis, in a database and key prefix of its own, removed afterwards).

Processes are pinned with ``taskset`` to the service CPUs chosen by ``benchmarks.run``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

VENV_BIN = Path(sys.executable).parent
REPORTSCORE = str(VENV_BIN / "reportscore")
REPO_ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_SQLALCHEMY_TEMPLATE = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ``--src``: benchmark the reportscore package of another source tree (e.g. ``git archive HEAD src`` unpacked
# somewhere) with this virtualenv: it goes first on the service processes' PYTHONPATH, ahead of the editable install.
SERVICE_SRC: Path | None = None


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any REPORTSCORE_* of the developer's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPORTSCORE_")}
    paths = [str(SERVICE_SRC)] if SERVICE_SRC is not None else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO_ROOT)])
    env.setdefault("REPORTSCORE_LOG_FORMAT", "json")
    env.update(extra)
    return env


def pinned(cmd: list[str], cpus: set[int] | None) -> list[str]:
    """``cmd`` under ``taskset -c`` (inherited by every thread and child), when taskset exists and cpus are set."""
    taskset = shutil.which("taskset")
    if cpus is None or taskset is None:
        return cmd
    return [taskset, "-c", ",".join(str(c) for c in sorted(cpus)), *cmd]


class Proc:
    """A long-running command with its output in a log file."""

    def __init__(self, cmd: list[str], *, env: dict[str, str], log_path: Path, cpus: set[int] | None) -> None:
        self.cmd = pinned(cmd, cpus)
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:  # one log per run: log_problems() counts its lines
            self.proc = subprocess.Popen(self.cmd, env=clean_env(self.env), stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 40.0, sig: int = signal.SIGTERM) -> None:
        """``sig`` (graceful), SIGKILL after ``timeout_s``; only this process (its children follow it).

        Under cProfile use SIGINT: uvicorn re-raises the signal it caught after shutting down, and SIGINT becomes
        a KeyboardInterrupt that lets the profiler write its file, where SIGTERM would end the process first."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class HttpServer(Proc):
    """A server on a free loopback port, ready when ``ready_path`` answers 200."""

    def __init__(
        self,
        cmd: list[str],
        *,
        port: int,
        env: dict[str, str],
        log_path: Path,
        cpus: set[int] | None,
        ready_path: str = "/health/ready",
    ) -> None:
        super().__init__(cmd, env=env, log_path=log_path, cpus=cpus)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = ready_path

    def wait_ready(self, timeout_s: float = 90.0) -> HttpServer:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.cmd} exited:\n{self.logs()[-3000:]}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.cmd} not ready after {timeout_s}s:\n{self.logs()[-3000:]}")


def floor_server(out: Path, cpus: set[int] | None) -> HttpServer:
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.floor_app", "--host", "127.0.0.1", "--port", str(port)]
    return HttpServer(cmd, port=port, env={}, log_path=out / "floor.log", cpus=cpus)


def service_command(port: int, data_dir: Path | None, profile: list[str] | None = None) -> list[str]:
    """``reportscore serve`` (or ``<profiler> -m reportscore.cli serve``)."""
    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    if profile:
        return [*profile, "-m", "reportscore.cli", *args]
    return [REPORTSCORE, *args]


def embedded_server(
    out: Path, cpus: set[int] | None, *, name: str = "embedded", profile: list[str] | None = None
) -> HttpServer:
    port = free_port()
    data_dir = out / f"{name}-data-{uuid.uuid4().hex[:6]}"
    return HttpServer(
        service_command(port, data_dir, profile), port=port, env={}, log_path=out / f"{name}.log", cpus=cpus
    )


def log_problems(paths: list[Path]) -> dict[str, int]:
    """WARNING and ERROR lines of the services' JSON logs, counted by level, logger, message and error kind."""
    counts: dict[str, int] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            level = str(entry.get("level", ""))
            if level not in ("WARNING", "ERROR", "CRITICAL"):
                continue
            key = f"{path.name}: {level} {entry.get('logger', '?')}: {entry.get('msg', '')}"
            if entry.get("error"):
                key += f" ({str(entry['error'])[:80]})"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def config_show(env: dict[str, str]) -> dict[str, Any]:
    """``reportscore config show`` with this environment (secrets redacted by the command)."""
    result = subprocess.run(
        [REPORTSCORE, "config", "show"], env=clean_env(env), capture_output=True, text=True, check=False, timeout=60
    )
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        return {"error": result.stderr[-500:]}
    return data


def probe_sync(url: str) -> dict[str, Any]:
    """Whether ``POST /score`` exists: 404/405 means not (yet) available."""
    body = [
        {"abuse_type": "MSG", "report_text_len": 10, "profile_rating": 5.0, "popularity": 1,
         "lifetime_matches_created": 3}
    ]  # fmt: skip
    try:
        resp = httpx.post(f"{url}/score?persist=false", json=body, timeout=10)
    except httpx.TransportError as exc:
        return {"available": False, "status": None, "detail": type(exc).__name__}
    return {"available": resp.status_code not in (404, 405), "status": resp.status_code}


# --- distributed mode -----------------------------------------------------------------------------------------


def shared_services_available() -> tuple[bool, str]:
    import psycopg
    import redis

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return False, f"PostgreSQL unreachable: {type(exc).__name__}"
    try:
        with redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2) as client:
            client.ping()
    except redis.exceptions.RedisError as exc:
        return False, f"Redis unreachable: {type(exc).__name__}"
    return True, ""


def server_versions() -> dict[str, str]:
    import psycopg
    import redis

    versions: dict[str, str] = {}
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            versions["postgresql"] = str(row[0]) if row else "?"
    except psycopg.Error:
        versions["postgresql"] = "unreachable"
    try:
        with redis.Redis.from_url(REDIS_URL, socket_timeout=2) as client:
            info: Any = client.info("server")
            versions["redis"] = str(info.get("redis_version", "?"))
    except redis.exceptions.RedisError:
        versions["redis"] = "unreachable"
    return versions


@dataclass
class Cluster:
    """API + ``workers`` x ``reportscore worker --concurrency=<concurrency>``, on a database and Redis prefix of
    their own."""

    out: Path
    cpus: set[int] | None
    workers: int = 2
    concurrency: int = 1
    db_name: str = field(default_factory=lambda: f"rs_bench_{uuid.uuid4().hex[:10]}")
    prefix: str = field(default_factory=lambda: f"rsbench-{uuid.uuid4().hex[:10]}")
    api: HttpServer | None = None
    worker_procs: list[Proc] = field(default_factory=list)
    created_db: bool = False

    @property
    def env(self) -> dict[str, str]:
        return {
            "REPORTSCORE_DATABASE_URL": PG_SQLALCHEMY_TEMPLATE.format(db=self.db_name),
            "REPORTSCORE_BROKER_URL": REDIS_URL,
            "REPORTSCORE_REDIS_PREFIX": self.prefix,
            "REPORTSCORE_QUEUE_NAME": f"{self.prefix}-scoring",
            "REPORTSCORE_DATA_DIR": str(self.out / f"distributed-data-{self.prefix}"),
        }

    def pids(self) -> list[int]:
        procs: list[Proc] = [*([self.api] if self.api else []), *self.worker_procs]
        return [p.pid for p in procs if p.alive()]

    def start(self) -> Cluster:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.created_db = True
        migrate = subprocess.run(
            [REPORTSCORE, "migrate"], env=clean_env(self.env), capture_output=True, text=True, check=False, timeout=120
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"reportscore migrate failed:\n{migrate.stderr[-3000:]}")
        port = free_port()
        self.api = HttpServer(
            service_command(port, None), port=port, env=self.env, log_path=self.out / "dist-api.log", cpus=self.cpus
        )
        self.api.start()
        for i in range(self.workers):
            worker = Proc(
                [REPORTSCORE, "worker", f"--concurrency={self.concurrency}"],
                env=self.env,
                log_path=self.out / f"dist-worker-{i}.log",
                cpus=self.cpus,
            )
            self.worker_procs.append(worker.start())
        self.api.wait_ready()
        deadline = time.monotonic() + 90
        for worker in self.worker_procs:
            while worker.logs().count('"msg":"worker process ready"') < self.concurrency or "ready." not in (
                worker.logs()
            ):
                if not worker.alive():
                    raise RuntimeError(f"worker exited:\n{worker.logs()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker not ready:\n{worker.logs()[-3000:]}")
                time.sleep(0.2)
        return self

    def stop(self) -> dict[str, Any]:
        """Stop every process, drop the database, delete this run's Redis keys (SCAN on the prefix, never FLUSH)."""
        for proc in [*([self.api] if self.api else []), *self.worker_procs]:
            proc.stop()
        cleanup: dict[str, Any] = {"database": self.db_name, "redis_prefix": self.prefix}
        if self.created_db:
            import psycopg

            try:
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
                cleanup["database_dropped"] = True
            except psycopg.Error as exc:
                cleanup["database_dropped"] = f"failed: {exc}"
        import redis

        try:
            with redis.Redis.from_url(REDIS_URL, socket_timeout=5) as client:
                keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
                for start in range(0, len(keys), 500):
                    client.delete(*keys[start : start + 500])
                cleanup["redis_keys_deleted"] = len(keys)
        except redis.exceptions.RedisError as exc:
            cleanup["redis_keys_deleted"] = f"failed: {exc}"
        return cleanup
