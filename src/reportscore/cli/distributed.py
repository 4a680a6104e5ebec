"""Commands of distributed mode: a Celery worker, its liveness probe, Flower, and a whole local deployment."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from typing import Annotated, Any

import typer

from reportscore.cli.common import (
    SETTING_DEFAULTS,
    distributed_settings,
    enable_metrics,
    err,
    fail,
    require_migrated,
    setting_option,
)


def worker(
    concurrency: Annotated[
        int, setting_option("worker_concurrency", "Pool processes of this Celery worker.")
    ] = SETTING_DEFAULTS["worker_concurrency"],
) -> None:
    """Run a Celery worker (distributed mode): consumes the queue, scores jobs, writes results to the database."""
    settings = distributed_settings(worker_concurrency=concurrency)
    metrics_dir = enable_metrics(settings)  # before anything imports prometheus_client
    from reportscore.monitoring import multiproc
    from reportscore.monitoring.logs import configure_logging
    from reportscore.runners.celery_app import create_celery_app

    configure_logging(level=settings.log_level, fmt=settings.log_format, log_file=settings.log_file)
    require_migrated(settings)
    import xgboost  # noqa: F401  # imported once here, so the forked pool processes start without paying for it
    from celery.signals import worker_init, worker_shutting_down

    shutdown_requested = threading.Event()
    controllers: list[Any] = []
    worker_shutting_down.connect(lambda **_: shutdown_requested.set(), weak=False)
    worker_init.connect(lambda sender, **_: controllers.append(sender), weak=False)
    celery_app = create_celery_app(settings)
    from reportscore.gc_tuning import tune_gc

    tune_gc()  # before the pool forks: the children share the frozen start-up objects (and tune again after theirs)
    port = settings.worker_metrics_port
    stop_metrics = multiproc.serve_metrics(settings.host, port) if port else None  # all pool processes' metrics
    celery_app.start(
        [
            "worker",
            f"--concurrency={settings.worker_concurrency}",
            "--pool=prefork",
            f"--queues={settings.queue_name}",
            f"--hostname=reportscore-{os.getpid()}@{socket.gethostname()}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    if stop_metrics is not None:
        stop_metrics()
    code = controllers[0].exitcode if controllers else 1  # app.start() does not return the worker's exit code
    if code and not shutdown_requested.is_set():
        # Celery stops on an "unrecoverable" error in a few broker reconnection paths (kombu bugs seen when Redis
        # restarts under load). Nothing is lost — unacknowledged messages are redelivered and the database lease
        # lets the reconciler re-queue the job — so start over in a fresh process instead of staying down.
        logging.getLogger("reportscore.worker").error("worker stopped on an error; restarting", extra={"code": code})
        time.sleep(1.0)
        metrics_dir.close()
        os.execv(sys.executable, [sys.executable, "-m", "reportscore.cli", *sys.argv[1:]])  # noqa: S606
    raise typer.Exit(code=code or 0)


def worker_ping(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = 2.0,
    any_host: Annotated[bool, typer.Option("--any-host", help="Accept a worker on any machine.")] = False,
) -> None:
    """Exit 0 when a worker on this machine answers a ping (a liveness/readiness probe), 1 otherwise."""
    settings = distributed_settings()
    from reportscore.runners.celery_app import create_celery_app

    celery_app = create_celery_app(settings)
    try:
        replies = celery_app.control.ping(timeout=timeout)
    except Exception as exc:
        err.print(f"broker unreachable: {type(exc).__name__}")
        raise typer.Exit(code=1) from None
    suffix = f"@{socket.gethostname()}"
    names = [name for reply in replies for name in reply if any_host or name.endswith(suffix)]
    if not names:
        err.print("no worker answered")
        raise typer.Exit(code=1)
    typer.echo(" ".join(sorted(names)))


def flower() -> None:
    """Run Flower, the Celery monitoring UI, on REPORTSCORE_HOST:REPORTSCORE_FLOWER_PORT, behind basic auth."""
    settings = distributed_settings()
    if settings.flower_basic_auth is None:
        fail("Flower must not run without authentication: set REPORTSCORE_FLOWER_BASIC_AUTH=user:password")
    auth = settings.flower_basic_auth.get_secret_value()
    if ":" not in auth:
        fail("REPORTSCORE_FLOWER_BASIC_AUTH must look like user:password")
    from reportscore.monitoring.logs import configure_logging
    from reportscore.runners.celery_app import create_celery_app

    configure_logging(level=settings.log_level, fmt=settings.log_format, log_file=settings.log_file)
    celery_app = create_celery_app(settings)
    celery_app.start(
        [
            "flower",
            f"--address={settings.host}",
            f"--port={settings.flower_port}",
            f"--basic-auth={auth}",
            "--persistent=False",
        ]
    )


def local_cluster(
    workers: Annotated[int, typer.Option(help="Celery workers (`reportscore worker` processes) to start.")] = 2,
    api_processes: Annotated[
        int, setting_option("api_processes", "API processes serving the port.")
    ] = SETTING_DEFAULTS["api_processes"],
    flower: Annotated[bool, typer.Option(help="Also start Flower (needs REPORTSCORE_FLOWER_BASIC_AUTH).")] = True,
) -> None:
    """Run a whole distributed deployment on this machine: migrate, then API + workers + Flower.

    Uses the same process commands as the containers (``migrate``, ``serve``, ``worker``, ``flower``) and the
    REPORTSCORE_* environment (set REPORTSCORE_DATABASE_URL and REPORTSCORE_BROKER_URL). Ctrl-C or SIGTERM stops
    every process gracefully.
    """
    import signal
    import subprocess

    settings = distributed_settings(api_processes=api_processes)
    command = [sys.executable, "-m", "reportscore.cli"]
    migrated = subprocess.run([*command, "migrate"], check=False)
    if migrated.returncode != 0:
        raise typer.Exit(code=migrated.returncode)
    specs: list[tuple[str, list[str]]] = [("api", ["serve", "--api-processes", str(api_processes)])]
    specs += [(f"worker-{i}", ["worker"]) for i in range(workers)]
    if flower:
        if settings.flower_basic_auth is None:
            fail("set REPORTSCORE_FLOWER_BASIC_AUTH=user:password, or pass --no-flower")
        specs.append(("flower", ["flower"]))

    def env_for(name: str) -> dict[str, str]:
        env = dict(os.environ)
        if name.startswith("worker-") and settings.worker_metrics_port:  # one metrics port per worker on this host
            env["REPORTSCORE_WORKER_METRICS_PORT"] = str(settings.worker_metrics_port + int(name.split("-")[1]))
        return env

    procs = {name: subprocess.Popen([*command, *args], env=env_for(name)) for name, args in specs}
    err.print(
        f"local cluster: API http://{settings.host}:{settings.port}"
        + (f", Flower http://{settings.host}:{settings.flower_port}" if flower else "")
        + f", {workers} workers (pids {', '.join(str(p.pid) for n, p in procs.items() if n.startswith('worker'))})"
    )
    stopping = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping.is_set() and all(p.poll() is None for p in procs.values()):
        stopping.wait(0.5)
    exited = [name for name, p in procs.items() if p.poll() is not None]
    if exited and not stopping.is_set():
        err.print(f"[bold red]stopping:[/] {', '.join(exited)} exited")
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(timeout=settings.shutdown_drain_s + 10)
        except subprocess.TimeoutExpired:
            p.kill()
    raise typer.Exit(code=0 if stopping.is_set() else 1)
