"""Container stand-ins: run a process of the reportscore image the way a container runtime would, without one.

Each container gets a private root directory standing in for the image's filesystem, entered with ``chroot`` in a
mount namespace of its own (``unshare --mount``; needs root, which CI and these machines have):

- the image's own files: the host's ``/usr`` and ``/etc`` (the base image's system), the Python interpreter, the
  runtime-only virtual environment and the project source, all read-only at their host paths (the environment's
  scripts name them); ``/etc/hosts`` maps the compose/Kubernetes service names (``postgres``, ``redis``) to the
  local servers, ``/etc/passwd`` knows the image's user;
- the directories the Dockerfile creates (its WORKDIR, the data directory owned by the image user, the user's
  home, ``/tmp``), empty and private to this container;
- the volumes the deployment file declares, bind-mounted at their container paths: the only way two containers
  share a file;
- with ``read_only_root`` (Kubernetes ``readOnlyRootFilesystem: true``) the whole root is remounted read-only, so
  only the mounted volumes are writable;
- the process runs as the image's (or the pod's) uid/gid, never as root.

The network is the host's: service names resolve to 127.0.0.1 and each container port is mapped to a free host
port by the caller (``remap_ports``). deploy/README.md lists what this does not prove about real containers.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tests.conftest import require
from tests.deploy.manifests import ROOT, dockerfile
from tests.servers import ManagedProcess

# The PATH of the python:3.11-slim base image, which the Dockerfile's ``ENV PATH=...:${PATH}`` extends.
BASE_IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_USER_NAME = "reportscore"
IMAGE_HOME = "/home/reportscore"  # the Dockerfile's useradd --home-dir
SERVICE_HOSTS = ("postgres", "redis")


def image_uid_gid() -> tuple[int, int]:
    """The Dockerfile's ``USER uid:gid``."""
    uid, _, gid = dockerfile().last("USER").partition(":")
    return int(uid), int(gid or uid)


def image_workdir() -> str:
    return dockerfile().last("WORKDIR")


def image_data_dir() -> str:
    return dockerfile().env()["REPORTSCORE_DATA_DIR"]


def image_environment(venv: Path) -> dict[str, str]:
    """The Dockerfile's ENV with its virtual environment replaced by ``venv``, plus the HOME a runtime sets."""
    env = dockerfile().env()
    env["PATH"] = env["PATH"].replace("${PATH}", BASE_IMAGE_PATH).replace(f"{image_workdir()}/.venv", str(venv))
    env["HOME"] = IMAGE_HOME
    return env


def image_dirs() -> dict[str, tuple[int, int, int]]:
    """Directories of the image a container starts with: path -> (uid, gid, mode)."""
    uid, gid = image_uid_gid()
    return {
        image_workdir(): (0, 0, 0o755),
        image_data_dir(): (uid, gid, 0o755),  # RUN mkdir -p ... && chown 10001:10001
        IMAGE_HOME: (uid, gid, 0o755),
        "/tmp": (0, 0, 0o1777),
    }


@dataclass(frozen=True)
class Mount:
    """A volume: ``source`` on the host at ``target`` inside the container."""

    source: Path
    target: str


@dataclass
class Container:
    """One container (or pod container) to run."""

    name: str
    argv: list[str]
    env: dict[str, str]
    venv: Path
    mounts: list[Mount] = field(default_factory=list)
    read_only_root: bool = False
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    workdir: str = "/"


def new_volume(path: Path, *, uid: int = 0, gid: int = 0, mode: int = 0o755) -> Path:
    """A host directory for a volume, with the owner and mode the runtime would give it."""
    path.mkdir(parents=True)
    os.chown(path, uid, gid)
    path.chmod(mode)
    return path


def compose_volume(path: Path, target: str) -> Path:
    """A new Docker named volume mounted at ``target``: it takes the owner and mode of the image's directory
    there (Docker copies it up), else root's."""
    uid, gid, mode = image_dirs().get(target, (0, 0, 0o755))
    return new_volume(path, uid=uid, gid=gid, mode=mode & 0o7777)


def _python_prefix(venv: Path) -> str:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def _etc_files(dir_: Path, uid: int, gid: int) -> dict[str, Path]:
    """/etc/hosts with the service names, /etc/passwd and /etc/group with the image's user."""
    names = " ".join(SERVICE_HOSTS)
    files = {
        "/etc/hosts": Path("/etc/hosts").read_text() + f"\n127.0.0.1 {names}\n",
        "/etc/passwd": Path("/etc/passwd").read_text()
        + f"{IMAGE_USER_NAME}:x:{uid}:{gid}::{IMAGE_HOME}:/usr/sbin/nologin\n",
        "/etc/group": Path("/etc/group").read_text() + f"{IMAGE_USER_NAME}:x:{gid}:\n",
    }
    out: dict[str, Path] = {}
    for target, text in files.items():
        path = dir_ / target.rsplit("/", 1)[1]
        path.write_text(text)
        path.chmod(0o644)
        out[target] = path
    return out


def _script(container: Container, root: Path, etc: dict[str, Path]) -> str:
    """The shell script that builds the container's mounts (as root, in its mount namespace) and execs its process."""
    q = shlex.quote
    read_only = [Path("/usr"), Path("/etc"), Path(_python_prefix(container.venv)), container.venv, ROOT]
    lines = ["set -eu", "umask 022", f"R={q(str(root))}", 'mount --bind "$R" "$R"']
    for link in ("bin", "lib", "lib64", "sbin"):
        host = Path("/") / link
        if host.is_symlink():
            lines.append(f'ln -s {q(os.readlink(host))} "$R/{link}"')
        elif host.is_dir():
            read_only.append(host)
    # The declared volumes first: the image's own files (the interpreter, the environment, the code) stay visible
    # where they are even when a volume is mounted above them (a checkout under /tmp, an emptyDir on /tmp).
    for mount in container.mounts:
        lines += [f'mkdir -p "$R"{q(mount.target)}', f'mount --bind {q(str(mount.source))} "$R"{q(mount.target)}']
    for path in read_only:
        lines += [
            f'mkdir -p "$R"{q(str(path))}',
            f'mount --rbind {q(str(path))} "$R"{q(str(path))}',
            f'mount -o remount,bind,ro "$R"{q(str(path))}',
        ]
    for local in (".venv", ".tools"):  # the checkout's own environments are not in the image (.dockerignore)
        if (ROOT / local).is_dir():
            lines.append(f'mount -t tmpfs -o ro,size=4k tmpfs "$R"{q(str(ROOT / local))}')
    for target, source in etc.items():
        lines.append(f'mount --bind {q(str(source))} "$R"{q(target)}')
    for special in ("/proc", "/dev", "/sys"):
        lines += [f'mkdir -p "$R"{special}', f'mount --rbind {special} "$R"{special}']
    if container.read_only_root:
        lines.append('mount -o remount,bind,ro "$R"')
    groups = ",".join(str(g) for g in container.groups) or str(container.gid)
    lines.append(
        f'exec chroot --userspec={container.uid}:{container.gid} --groups={groups} "$R" '
        f'/usr/bin/env --chdir={q(container.workdir)} "$@"'
    )
    return "\n".join(lines)


class ContainerProcess(ManagedProcess):
    """A running container stand-in. Its pid is the container's process itself (every step ``exec``s)."""

    def __init__(self, container: Container, *, state_dir: Path) -> None:
        super().__init__(container.argv, env=container.env, log_path=state_dir / f"{container.name}.log")
        self.container = container
        self.state_dir = state_dir
        self.root = state_dir / f"{container.name}.root"

    def spawn(self) -> None:
        """Start on a fresh root (a new container: nothing of a previous run's own filesystem survives)."""
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.root.chmod(0o755)
        for path, (uid, gid, mode) in image_dirs().items():
            target = self.root / path.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            os.chown(target, uid, gid)
            target.chmod(mode)
        etc_dir = self.state_dir / f"{self.container.name}.etc"
        etc_dir.mkdir(exist_ok=True)
        etc = _etc_files(etc_dir, self.container.uid, self.container.gid)
        script = _script(self.container, self.root, etc)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "standin", *self.container.argv]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, env=self.container.env, stdout=log, stderr=subprocess.STDOUT)

    def run(self, *, timeout_s: float = 180.0) -> int:
        """Run to completion (a one-shot container); returns its exit code."""
        self.spawn()
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def wait_for(self, what: str, ready: Callable[[], bool], *, timeout_s: float = 120.0) -> None:
        """Poll ``ready`` until it holds; fail with the container's log when it exits or the deadline passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            if not self.alive():
                raise AssertionError(f"{self.container.name} exited before {what}:\n{self.logs()[-6000:]}")
            time.sleep(0.2)
        raise AssertionError(f"{self.container.name}: no {what} after {timeout_s}s:\n{self.logs()[-6000:]}")


def remap_ports(argv: list[str], env: dict[str, str], ports: dict[int, int]) -> tuple[list[str], dict[str, str]]:
    """The container ports in a ``--port N`` argument and in ``*_PORT`` variables replaced by their host ports.

    Containers have a network namespace each; the stand-ins share the host's, so a port two containers (or another
    test) might both bind is mapped the way the file's ``ports:`` map it.
    """
    out = list(argv)
    for index in range(1, len(out)):
        if out[index - 1] == "--port" and out[index].isdigit() and int(out[index]) in ports:
            out[index] = str(ports[int(out[index])])
    new_env = {
        key: str(ports[int(value)]) if key.endswith("_PORT") and value.isdigit() and int(value) in ports else value
        for key, value in env.items()
    }
    return out, new_env


def with_local_services(env: dict[str, str], *, pg_url: str, redis_prefix: str) -> dict[str, str]:
    """A container's environment pointed at this test's own database on the local PostgreSQL (same host name,
    resolved by the stand-in's /etc/hosts; the local server's user, whose trust authentication ignores the password)
    and at its own Redis key prefix and queue."""
    from sqlalchemy.engine import make_url

    local = make_url(pg_url)
    url = make_url(env["REPORTSCORE_DATABASE_URL"]).set(username=local.username, database=local.database)
    return {
        **env,
        "REPORTSCORE_DATABASE_URL": url.render_as_string(hide_password=False),
        "REPORTSCORE_REDIS_PREFIX": redis_prefix,
        "REPORTSCORE_QUEUE_NAME": redis_prefix,
    }


def standins_available() -> tuple[bool, str]:
    """Whether this machine can run stand-ins: root, and the tools they use."""
    missing = [tool for tool in ("unshare", "chroot", "mount") if shutil.which(tool) is None]
    if missing:
        return False, f"container stand-ins need {', '.join(missing)} (util-linux, coreutils)"
    if os.geteuid() != 0:
        return False, "container stand-ins need root (mount namespaces, chroot)"
    if sys.platform != "linux":
        return False, "container stand-ins need Linux mount namespaces"
    return True, ""


class Deployment:
    """The containers of one deployment file, started on this machine from ``venv``; stopped together."""

    def __init__(self, *, venv: Path, work_dir: Path, pg_url: str, redis_prefix: str) -> None:
        self.venv = venv
        self.work_dir = work_dir
        self.pg_url = pg_url
        self.redis_prefix = redis_prefix
        self.running: list[ContainerProcess] = []

    def start(self, process: ContainerProcess) -> ContainerProcess:
        process.spawn()
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.running):
            process.stop()


D = TypeVar("D", bound=Deployment)


def running_deployment(cls: type[D], *, venv: Path, work_dir: Path, pg_url: str, redis_prefix: str) -> Iterator[D]:
    """A fixture's body: the deployment, every container it started stopped afterwards."""
    available, reason = standins_available()
    require(available, reason)
    deployment = cls(venv=venv, work_dir=work_dir, pg_url=pg_url, redis_prefix=redis_prefix)
    try:
        yield deployment
    finally:
        deployment.stop_all()
