"""Run reportscore's own processes (API, worker, migrate) as subprocesses, for end-to-end and fault tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx2 as httpx

VENV_BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[1]
REPORTSCORE = str(VENV_BIN / "reportscore")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The test's environment without any REPORTSCORE_* of the developer's, plus ``extra``.

    The repository root is on PYTHONPATH so processes can load test-only model formats (``tests.fakes``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPORTSCORE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.setdefault("REPORTSCORE_LOG_FORMAT", "json")
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], *, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one ``reportscore`` command to completion."""
    return subprocess.run(
        [REPORTSCORE, *args], env=clean_env(env), capture_output=True, text=True, timeout=timeout_s, check=False
    )


class ManagedProcess:
    """A long-running ``reportscore`` command with its output in a log file."""

    def __init__(self, args: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    own_process_group = False
    """Start the command in a process group of its own, so ``kill_group`` kills it with every child at once."""

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [REPORTSCORE, *self.args],
                env=clean_env(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0 if self.own_process_group else None,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """``kill -9``: no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def kill_group(self) -> None:
        """``kill -9`` of the whole process group (the command and its children), as when its host dies."""
        assert self.own_process_group, "not started in a process group of its own"
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, *, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait for a graceful exit; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def children(self) -> list[int]:
        """Pids of direct children (a Celery worker's pool processes)."""
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.alive():
            try:
                self.terminate(timeout_s=30)
            except subprocess.TimeoutExpired:
                self.kill()


class ServiceProcess(ManagedProcess):
    """``reportscore serve`` on a free loopback port, ready when /health/ready answers 200."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        work_dir: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), *extra_args]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        base = work_dir or (data_dir.parent if data_dir is not None else Path("/tmp"))
        super().__init__(args, env=env or {}, log_path=log_path or base / f"service-{self.port}.log")

    def start(self, *, ready_timeout_s: float = 60.0) -> ServiceProcess:
        self.spawn()
        self.wait_ready(ready_timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"service not ready after {timeout_s}s:\n{self.logs()[-4000:]}")

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class WorkerProcess(ManagedProcess):
    """``reportscore worker``, ready when its pool processes have loaded the model."""

    own_process_group = True

    def __init__(self, *, env: dict[str, str], log_path: Path, concurrency: int = 2) -> None:
        super().__init__(["worker", f"--concurrency={concurrency}"], env=env, log_path=log_path)
        self.concurrency = concurrency

    def start(self, *, ready_timeout_s: float = 60.0) -> WorkerProcess:
        already = self.logs().count('"msg":"worker process ready"')
        self.spawn()
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited:\n{self.logs()[-4000:]}")
            ready = self.logs().count('"msg":"worker process ready"') - already
            if ready >= self.concurrency and "ready." in self.logs():
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"worker not ready after {ready_timeout_s}s:\n{self.logs()[-4000:]}")
