"""reportscore's distributed deployment spread over network hosts (``netlab`` namespaces) on one machine.

The layout is that of a small production deployment:

========  ======================  =========================================
host      networks                runs
========  ======================  =========================================
pg        pg                      a throwaway PostgreSQL, bound to its address
redis     redis                   a throwaway Redis (the broker), bound to its address
api1/2    pg, redis, api          ``reportscore serve``
w1/2/3    pg, redis               ``reportscore worker``
load      api                     the load generator (a thread of the test process inside the namespace)
========  ======================  =========================================

Every host reaches Redis through ``LinkProxy`` on the redis network's gateway (pass-through unless a test impairs
the broker's link), PostgreSQL directly. A partition cuts one host's link to one network (``NetLab.cut``).

PostgreSQL is started with server-side TCP keepalives (``tcp_keepalives_*``) and the clients connect with libpq
keepalives and ``tcp_user_timeout`` in the database URL: without them, a worker host cut off in the middle of a
transaction keeps its row locks on the server for as long as the kernel takes to give up on the connection (minutes
to hours), and nothing can claim those jobs again. See "Across hosts" in the deployment docs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import redis

from tests.infra.netlab import NetLab
from tests.infra.netproxy import LinkProxy
from tests.infra.throwaway import PostgresServer, RedisServer, free_port
from tests.integration.cluster import Cluster
from tests.servers import REPORTSCORE, ServiceProcess, WorkerProcess, clean_env

NETWORKS = ("pg", "redis", "api")
LAYOUT: dict[str, Sequence[str]] = {
    "pg": ("pg",),
    "redis": ("redis",),
    "api1": ("pg", "redis", "api"),
    "api2": ("pg", "redis", "api"),
    "w1": ("pg", "redis"),
    "w2": ("pg", "redis"),
    "w3": ("pg", "redis"),
    "load": ("api",),
}
API_HOSTS = ("api1", "api2")
WORKER_HOSTS = ("w1", "w2", "w3")

API_PORT = 8000
READY_TIMEOUT_S = 150.0
"""Starting two APIs and three workers at once on a busy 2-core machine takes a while."""

SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",
}
"""The server drops a connection whose client host went silent after ~11 s, releasing its locks."""
CLIENT_KEEPALIVES = (
    "connect_timeout=5&keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=3&tcp_user_timeout=10000"
)
"""libpq options: a client notices a silent server (or unacknowledged writes) within ~10 s instead of minutes."""


class NsPostgres(PostgresServer):
    """A throwaway PostgreSQL inside one host, listening on that host's address only."""

    def __init__(self, lab: NetLab, host: str, **kwargs: Any) -> None:
        self.lab = lab
        self.host = host
        self.address = lab.hosts[host].address("pg")
        settings = {"listen_addresses": self.address, "max_connections": "200", **SERVER_KEEPALIVES}
        # The base class checks its port on the root namespace's loopback when it stops: a port free there keeps
        # that check trivially true (inside the host nothing else listens anyway).
        super().__init__(port=free_port(), settings=settings, **kwargs)

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@{self.address}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.address} port={self.port} user=postgres dbname={dbname} connect_timeout=5"

    def _prepare(self) -> None:
        super()._prepare()
        line = f"host all all {self.lab.networks['pg'].subnet} trust\n"
        hba = self.data_dir / "pg_hba.conf"
        if line not in hba.read_text():
            with hba.open("a") as out:
                out.write(line)

    def _spawn(self) -> subprocess.Popen[bytes]:
        # ip netns exec needs root; setpriv then drops to the postgres user. Both exec: the pid is the postmaster's.
        user = self._run_as()
        assert self.bin_dir is not None
        settings = {
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "on",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            **self.settings,
        }
        proc_args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            proc_args += ["-c", f"{key}={value}"]
        if user is not None:
            proc_args = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *proc_args]
        kwargs = self._popen_kwargs()
        for key in ("user", "group", "extra_groups"):
            kwargs.pop(key, None)
        with self._log_path().open("ab") as log:
            return subprocess.Popen(
                self.lab.command(self.host, proc_args), stdout=log, stderr=subprocess.STDOUT, **kwargs
            )

    def _ping(self) -> bool:

        try:
            with psycopg.connect(self.conninfo().replace("connect_timeout=5", "connect_timeout=1")) as conn:
                conn.execute("SELECT 1")
                return True
        except psycopg.OperationalError:
            return False


class NsRedis(RedisServer):
    """A throwaway Redis inside one host, bound to that host's address."""

    def __init__(self, lab: NetLab, host: str, **kwargs: Any) -> None:
        self.lab = lab
        self.host = host
        self.address = lab.hosts[host].address("redis")
        super().__init__(port=free_port(), **kwargs)

    @property
    def url(self) -> str:
        return f"redis://{self.address}:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        opts: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0, **kwargs}
        return redis.Redis(host=self.address, port=self.port, db=0, **opts)

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert self.binary is not None
        args = [
            self.binary, "--port", str(self.port), "--bind", self.address, "--dir", str(self.dir),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
            "--logfile", str(self._log_path()),
            *self.extra_args,
        ]  # fmt: skip
        return subprocess.Popen(
            self.lab.command(self.host, args),
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _spawn_in(lab: NetLab, host: str, proc: ServiceProcess | WorkerProcess) -> None:
    with proc.log_path.open("ab") as log:
        proc.proc = subprocess.Popen(
            lab.command(host, [REPORTSCORE, *proc.args]),
            env=clean_env(proc.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0 if proc.own_process_group else None,
        )


class NsApi(ServiceProcess):
    """``reportscore serve`` inside an API host, on its address on the api network."""

    def __init__(self, lab: NetLab, host: str, *, env: dict[str, str], work_dir: Path) -> None:
        super().__init__(env=env, log_path=work_dir / f"{host}.log", work_dir=work_dir)
        self.lab = lab
        self.host = host
        address = lab.hosts[host].address("api")
        self.port = API_PORT
        # the api network is private to the lab: no API keys, as the loopback tests run
        self.args = ["serve", "--host", address, "--port", str(API_PORT), "--insecure"]
        self.url = f"http://{address}:{API_PORT}"

    def spawn(self) -> None:
        _spawn_in(self.lab, self.host, self)


class NsWorker(WorkerProcess):
    """``reportscore worker`` inside a worker host."""

    def __init__(self, lab: NetLab, host: str, *, env: dict[str, str], log_path: Path, concurrency: int) -> None:
        super().__init__(env=env, log_path=log_path, concurrency=concurrency)
        self.lab = lab
        self.host = host

    def spawn(self) -> None:
        _spawn_in(self.lab, self.host, self)


class HostCluster(Cluster):
    """``Cluster``'s accounting (statuses, exactly-once checks) over processes placed on hosts."""

    def __init__(self, lab: NetLab, *, work_dir: Path, database_url: str, broker_url: str, **extra: str) -> None:
        super().__init__(work_dir=work_dir, database_url=database_url, broker_url=broker_url, prefix="rshosts", **extra)
        self.lab = lab
        self.on_host: dict[str, list[NsApi | NsWorker]] = {}

    def start_api_on(self, host: str) -> NsApi:
        api = NsApi(self.lab, host, env=self.env, work_dir=self.work_dir)
        api.start(ready_timeout_s=READY_TIMEOUT_S)
        self.apis.append(api)
        self.on_host.setdefault(host, []).append(api)
        return api

    def start_worker_on(self, host: str, *, concurrency: int = 2) -> NsWorker:
        n = sum(1 for w in self.workers if isinstance(w, NsWorker) and w.host == host)
        env = {**self.env, "REPORTSCORE_WORKER_METRICS_PORT": str(free_port())}
        worker = NsWorker(
            self.lab, host, env=env, log_path=self.work_dir / f"{host}-worker-{n}.log", concurrency=concurrency
        )
        worker.start(ready_timeout_s=READY_TIMEOUT_S)
        self.workers.append(worker)
        self.on_host.setdefault(host, []).append(worker)
        return worker

    def start_hosts(self, api_hosts: Sequence[str], worker_hosts: Sequence[str]) -> None:
        """Start an API on each API host and a worker on each worker host, all at once (start-up is mostly
        importing and loading the model: in parallel it takes the time of the slowest)."""
        with ThreadPoolExecutor(max_workers=len(api_hosts) + len(worker_hosts)) as pool:
            apis = [pool.submit(self.start_api_on, h) for h in api_hosts]
            workers = [pool.submit(self.start_worker_on, h) for h in worker_hosts]
            for api in apis:
                api.result()
            for worker in workers:
                worker.result()

    def api(self, host: str) -> NsApi:
        return next(p for p in self.on_host[host] if isinstance(p, NsApi))

    def worker(self, host: str) -> NsWorker:
        """The last worker started on ``host``."""
        return [p for p in self.on_host[host] if isinstance(p, NsWorker)][-1]

    def api_urls(self) -> list[str]:
        return [a.url for a in self.apis if a.alive()]


def broker_proxy(lab: NetLab, redis_server: NsRedis) -> LinkProxy:
    """The broker's link: a proxy on the redis network's gateway in front of the Redis host."""
    gateway = lab.networks["redis"].gateway
    return LinkProxy(listen=(gateway, 0), upstream=(redis_server.address, redis_server.port)).start()
