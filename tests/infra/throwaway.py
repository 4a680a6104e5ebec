"""Throwaway Redis and PostgreSQL servers for tests that kill, stop or restart a server.

The shared services on 127.0.0.1 (5432, 6379, 5672) must never be stopped or flushed: a test that needs to
crash a server starts one of these on a free loopback port in a temp dir of its own, and removes it afterwards.

Every wait is bounded. A missing binary skips on a developer machine and fails under ``CI=true`` (``require``).

PostgreSQL refuses to run as root: when the tests run as root (CI does), ``initdb`` and ``postgres`` are started
directly as the ``postgres`` OS user (``subprocess.Popen(user=..., group=..., extra_groups=[])``, no ``runuser``
in between, so the process we hold *is* the postmaster) in a temp dir chowned to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
import redis
from psycopg import sql

from tests.conftest import require

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if someone takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_is_open(port: int, *, host: str = HOST, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_is_bindable(port: int, *, host: str = HOST) -> bool:
    """Whether a server could listen on ``host:port`` now (SO_REUSEADDR, as Redis and PostgreSQL use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_port_free(port: int, *, timeout_s: float = 10.0) -> None:
    """Wait until nothing listens on ``port`` any more; raise ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not port_is_open(port, timeout_s=0.2) and port_is_bindable(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} still in use after {timeout_s}s")


def _temp_base() -> str:
    """A short, world-traversable base for temp dirs (unix socket paths are limited to ~107 bytes)."""
    tmp = Path("/tmp")
    if tmp.is_dir() and tmp.stat().st_mode & 0o1777 == 0o1777:
        return str(tmp)
    return tempfile.gettempdir()


def _tail(path: Path, n_chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n_chars:]
    except OSError:
        return "<no log>"


def _pid_alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds no port, no memory and no shared-memory attachment)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def _descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (read from /proc; empty where /proc is missing)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class _ServerBase:
    """Shared plumbing: a temp dir, a port fixed at first start, a process, bounded waits."""

    name = "server"

    def __init__(self, *, port: int | None, start_timeout_s: float, stop_timeout_s: float, keep_dir: bool) -> None:
        self._fixed_port = port
        self.port: int = port or 0
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.keep_dir = keep_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self.last_start_s: float | None = None

    # -- to implement ------------------------------------------------------------------------------------------
    def _spawn(self) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def _ping(self) -> bool:
        raise NotImplementedError

    def _log_path(self) -> Path:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Runs before every spawn (after the temp dir exists)."""

    # -- lifecycle ----------------------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        """This server's temp dir (created on first start)."""
        if self._tmp is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._tmp

    @property
    def log_path(self) -> Path:
        return self._log_path()

    def logs(self) -> str:
        """The server's log so far (for assertion messages)."""
        return self._log_path().read_text(errors="replace") if self._log_path().exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    def _make_tmp(self) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"rs-{self.name}-", dir=_temp_base()))

    def start(self) -> Self:
        """Start on the port chosen at the first start (a free one unless given); wait until it answers."""
        if self.running:
            return self
        if self._tmp is None:
            self._tmp = self._make_tmp()
        first_start = self.port == 0
        attempts = 3 if first_start and self._fixed_port is None else 1
        t0 = time.monotonic()
        for attempt in range(attempts):
            if first_start:
                self.port = self._fixed_port or free_port()
            self._prepare()
            self.proc = self._spawn()
            try:
                self.wait_ready(self.start_timeout_s)
            except RuntimeError:
                self._reap(self.stop_timeout_s)
                self.proc = None
                log = _tail(self._log_path())
                port_taken = "in use" in log.lower() or "could not bind" in log.lower()
                if attempt + 1 < attempts and port_taken:
                    continue
                raise
            break
        self.last_start_s = time.monotonic() - t0
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Wait until the server answers a real request; ``RuntimeError`` if it exits or times out."""
        timeout = self.start_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None:
                raise RuntimeError(f"{self.name} is not started")
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(f"{self.name} on port {self.port} exited with {code}:\n{_tail(self._log_path())}")
            if self._ping():
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} on port {self.port} not ready after {timeout}s:\n{_tail(self._log_path())}"
                )
            time.sleep(0.05)

    def _graceful_signal(self) -> signal.Signals:
        return signal.SIGTERM

    def stop(self) -> None:
        """Graceful shutdown (bounded: SIGKILL after ``stop_timeout_s``); the port is free afterwards."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _signal(self.proc.pid, self._graceful_signal())
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.proc = None
        if self.port:
            wait_port_free(self.port, timeout_s=self.stop_timeout_s)

    def kill(self) -> None:
        """``kill -9``: no shutdown at all. The process (and any children) are gone and the port free afterwards."""
        if self.proc is None:
            return
        self._reap(self.stop_timeout_s)
        self.proc = None
        if self.port:
            wait_port_free(self.port, timeout_s=self.stop_timeout_s)

    def _reap(self, timeout_s: float) -> None:
        """SIGKILL the process and its descendants, wait for all of them (bounded)."""
        proc = self.proc
        if proc is None:
            return
        doomed: list[int] = []
        if proc.poll() is None:
            _signal(proc.pid, signal.SIGSTOP)  # freeze it: no new children between listing and killing
            doomed = _descendants(proc.pid)
            _signal(proc.pid, signal.SIGKILL)
            for pid in doomed:
                _signal(pid, signal.SIGKILL)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:  # pragma: no cover - SIGKILL not delivered
            raise RuntimeError(f"{self.name} pid {proc.pid} survived SIGKILL for {timeout_s}s") from exc
        deadline = time.monotonic() + timeout_s
        while any(_pid_alive(pid) for pid in doomed):
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.name} children {doomed} survived SIGKILL for {timeout_s}s")
            time.sleep(0.02)

    def restart(self) -> Self:
        """Stop (gracefully, if still running) and start again on the same port with the same data dir."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop (SIGKILL if it will not stop) and remove the temp dir."""
        try:
            if self.running:
                try:
                    self.stop()
                except (RuntimeError, TimeoutError):
                    self.kill()
            elif self.proc is not None:
                self._reap(self.stop_timeout_s)
                self.proc = None
        finally:
            if self._tmp is not None and not self.keep_dir:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class RedisServer(_ServerBase):
    """``redis-server`` on a free 127.0.0.1 port in a temp dir of its own.

    By default it keeps nothing on disk (``--save "" --appendonly no``): ``kill()`` or ``stop()`` loses all data.
    With ``appendonly=True`` the AOF (``appendfsync`` policy, ``everysec`` by default; ``always`` survives
    ``kill()`` too) makes the data survive ``restart()``.
    """

    name = "redis"

    def __init__(
        self,
        *,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        port: int | None = None,
        binary: str | None = None,
        extra_args: list[str] | None = None,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 10.0,
        keep_dir: bool = False,
    ) -> None:
        super().__init__(port=port, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s, keep_dir=keep_dir)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.binary = binary or shutil.which("redis-server")
        self.extra_args = list(extra_args or [])

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client with bounded timeouts (close it, or use it as a context manager)."""
        opts: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0, **kwargs}
        return redis.Redis(host=HOST, port=self.port, db=0, **opts)

    def _log_path(self) -> Path:
        return self.dir / "redis.log"

    def _spawn(self) -> subprocess.Popen[bytes]:
        require(self.binary is not None, "redis-server is needed on PATH (Debian package redis-server)")
        assert self.binary is not None
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--daemonize", "no",
            "--logfile", str(self._log_path()),
            *self.extra_args,
        ]  # fmt: skip
        return subprocess.Popen(
            args, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _ping(self) -> bool:
        try:
            with self.client(socket_timeout=0.5, socket_connect_timeout=0.5) as c:
                return bool(c.ping())
        except redis.exceptions.RedisError:  # ConnectionError, or BusyLoadingError while loading the AOF
            return False


def find_postgres_bin_dir() -> Path | None:
    """The directory with ``initdb`` and ``postgres``: ``$PG_BIN_DIR``, the newest /usr/lib/postgresql/*/bin,
    or wherever ``initdb`` on PATH really lives (/usr/local/bin/initdb is a symlink into the Debian tree)."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN_DIR"):
        candidates.append(Path(os.environ["PG_BIN_DIR"]))

    def version_key(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.parent.name.split(".") if x.isdigit())

    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version_key, reverse=True))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "postgres").is_file():
            return c
    return None


class PostgresServer(_ServerBase):
    """A throwaway PostgreSQL cluster: ``initdb`` (trust auth, UTF8, C locale) in a temp dir, the postmaster on a
    free port listening on 127.0.0.1 only, its unix socket inside the temp dir. ``fsync`` stays on.

    ``stop()`` is a fast shutdown (SIGINT), ``kill()`` SIGKILLs the postmaster *and* its children (which would
    otherwise keep the shared memory attached and block the next start), ``restart()`` starts again on the same
    port with the same data, going through crash recovery after a ``kill()``.
    """

    name = "pg"

    def __init__(
        self,
        *,
        port: int | None = None,
        bin_dir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 30.0,
        keep_dir: bool = False,
    ) -> None:
        super().__init__(port=port, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s, keep_dir=keep_dir)
        self.bin_dir = bin_dir or find_postgres_bin_dir()
        self.settings = dict(settings or {})
        self._initialized = False
        self.last_initdb_s: float | None = None

    # -- where things are -------------------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "sock"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq conninfo for psycopg."""
        return f"host={HOST} port={self.port} user=postgres dbname={dbname} connect_timeout=5"

    def connect(self, dbname: str = "postgres", *, autocommit: bool = False) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit)

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name``; returns its SQLAlchemy URL."""
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    # -- running as the postgres user -------------------------------------------------------------------------------
    def _run_as(self) -> pwd.struct_passwd | None:
        """The OS user to run as: ``postgres`` when we are root (initdb and postgres refuse root), else ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            require(False, "running as root needs a 'postgres' OS user to run a throwaway PostgreSQL")
            raise  # pragma: no cover - require raised

    def _popen_kwargs(self) -> dict[str, Any]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "LANG": "C",
            "TZ": "UTC",
            "HOME": str(self.dir),
        }
        kwargs: dict[str, Any] = {"cwd": self.dir, "env": env, "stdin": subprocess.DEVNULL}
        user = self._run_as()
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        return kwargs

    def _make_tmp(self) -> Path:
        tmp = super()._make_tmp()
        user = self._run_as()
        if user is not None:
            os.chown(tmp, user.pw_uid, user.pw_gid)
        return tmp

    def _log_path(self) -> Path:
        return self.dir / "postgres.log"

    def _initdb(self) -> None:
        assert self.bin_dir is not None
        t0 = time.monotonic()
        log = self.dir / "initdb.log"
        with log.open("wb") as out:
            try:
                code = subprocess.run(
                    [
                        str(self.bin_dir / "initdb"),
                        f"--pgdata={self.data_dir}",
                        "--username=postgres",
                        "--auth=trust",
                        "--encoding=UTF8",
                        "--locale=C",
                        "--no-sync",  # initdb's own fsync of 40 MB of template files; the server keeps fsync on
                        "--no-instructions",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=self.start_timeout_s,
                    check=False,
                    **self._popen_kwargs(),
                ).returncode
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"initdb timed out after {self.start_timeout_s}s:\n{_tail(log)}") from exc
        if code != 0:
            raise RuntimeError(f"initdb failed with {code}:\n{_tail(log)}")
        self.last_initdb_s = time.monotonic() - t0
        self._initialized = True

    def _prepare(self) -> None:
        require(
            self.bin_dir is not None,
            "PostgreSQL server binaries (initdb, postgres) are needed: /usr/lib/postgresql/*/bin or PG_BIN_DIR",
        )
        if not self._initialized:
            self._initdb()
        self.socket_dir.mkdir(exist_ok=True)
        user = self._run_as()
        if user is not None:
            os.chown(self.socket_dir, user.pw_uid, user.pw_gid)
        self._remove_stale_lock_files()

    def _remove_stale_lock_files(self) -> None:
        """After a ``kill()`` the postmaster.pid (and socket lock) stay behind. PostgreSQL ignores them when their
        PID is dead, but refuses to start when that PID was reused by another process: remove them then. Only called
        while our own server is not running, so a live PID in there is never ours."""
        for lock in (self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{self.port}.lock"):
            try:
                first = lock.read_text().splitlines()[0].strip()
            except (OSError, IndexError):
                continue
            pid = abs(int(first)) if first.lstrip("-").isdigit() else 0
            if pid == 0 or _pid_alive(pid):
                lock.unlink(missing_ok=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert self.bin_dir is not None
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "on",
            "max_connections": "50",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            **self.settings,
        }
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with self._log_path().open("ab") as log:
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, **self._popen_kwargs())

    def _graceful_signal(self) -> signal.Signals:
        return signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit

    def _ping(self) -> bool:
        try:
            with psycopg.connect(
                host=HOST, port=self.port, user="postgres", dbname="postgres", connect_timeout=1
            ) as conn:
                conn.execute("SELECT 1")
                return True
        except psycopg.OperationalError:  # refused, or "the database system is starting up" (crash recovery)
            return False
