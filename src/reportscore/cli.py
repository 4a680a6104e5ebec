"""The ``reportscore`` command line."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from reportscore.cli_bulk import score_file
from reportscore.settings import Settings

# Help text is printed as written: rich markup would swallow anything in square brackets.
_HELP: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": None}
app = typer.Typer(
    name="reportscore",
    help="Score user-generated abuse reports so moderators see the most urgent first.",
    add_completion=False,
    **_HELP,
)
config_app = typer.Typer(help="Inspect the effective configuration.", **_HELP)
app.add_typer(config_app, name="config")
models_app = typer.Typer(
    help="The model registry: register, list, show, promote and roll back versions of the served model.", **_HELP
)
app.add_typer(models_app, name="models")
keys_app = typer.Typer(
    help="API keys: create (shown once), list, revoke; generate one for REPORTSCORE_BOOTSTRAP_API_KEY.", **_HELP
)
app.add_typer(keys_app, name="keys")
err = Console(stderr=True, soft_wrap=True)


SETTING_DEFAULTS: dict[str, Any] = {
    name: field.get_default(call_default_factory=True) for name, field in Settings.model_fields.items()
}
"""Each setting's default: the default of an option that sets it, so ``--help`` shows the effective one."""


def setting_option(name: str, help: str, *param_decls: str) -> Any:
    """An option that sets the setting ``name``: it is also read from ``REPORTSCORE_<NAME>``, and ``--help`` shows
    that variable and the default (give the parameter ``SETTING_DEFAULTS[name]`` as its default)."""
    return typer.Option(*param_decls, help=help, envvar=env_var(name), show_envvar=True)


def env_var(name: str) -> str:
    return f"REPORTSCORE_{name.upper()}"


def _settings(**overrides: Any) -> Any:
    """Build and validate Settings (env vars + CLI overrides); exit 2 with the reason when impossible."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        _fail("invalid configuration:\n" + "\n".join(f"  - {_describe(e)}" for e in exc.errors()))


def _describe(error: Any) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()))
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, setting_option("host", "Address to bind.")] = SETTING_DEFAULTS["host"],
    port: Annotated[int, setting_option("port", "TCP port.")] = SETTING_DEFAULTS["port"],
    data_dir: Annotated[
        Path, setting_option("data_dir", "Directory of the SQLite database (embedded mode).")
    ] = SETTING_DEFAULTS["data_dir"],
    api_processes: Annotated[
        int, setting_option("api_processes", "API processes serving the port (distributed mode; embedded mode: 1).")
    ] = SETTING_DEFAULTS["api_processes"],
    insecure: Annotated[
        bool,
        setting_option(
            "insecure", "Serve without API keys on a non-loopback address (logged as a warning).", "--insecure"
        ),
    ] = SETTING_DEFAULTS["insecure"],
    workers: Annotated[
        int | None, typer.Option("--workers", hidden=True, help="Deprecated spelling of --api-processes.")
    ] = None,
) -> None:
    """Serve the HTTP API.

    Embedded mode (the default): SQLite migrated at start, scoring threads in this process. Distributed mode
    (REPORTSCORE_BROKER_URL and a PostgreSQL REPORTSCORE_DATABASE_URL): the API only; Celery workers score.
    On an address other than loopback it refuses to start until an API key exists (docs/security.md).
    """
    if workers is not None:
        source = ctx.get_parameter_source("api_processes")
        if source is not None and source.name == "COMMANDLINE":
            _fail("--workers is the old spelling of --api-processes: give only --api-processes")
        err.print(
            "warning: `serve --workers` is deprecated and will be removed: use `serve --api-processes` "
            f"(or {env_var('api_processes')}); `--workers` means Celery worker processes elsewhere",
            highlight=False,
        )
        api_processes = workers
    settings = _settings(host=host, port=port, data_dir=data_dir, api_processes=api_processes, insecure=insecure)
    _enable_metrics(settings)  # before anything imports prometheus_client
    import uvicorn

    from reportscore.app import create_app
    from reportscore.monitoring.logs import configure_logging

    configure_logging(level=settings.log_level, fmt=settings.log_format, log_file=settings.log_file)
    if not settings.is_sqlite:
        _require_migrated(settings)  # embedded mode migrates its own SQLite file at start instead
    _require_keys_unless_loopback(settings)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": int(settings.shutdown_drain_s),
        "server_header": False,
    }
    if settings.api_processes == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Several API processes (distributed mode only): each builds its app from the environment.
    for name in ("host", "port", "data_dir", "insecure"):
        os.environ[env_var(name)] = str(getattr(settings, name))
    uvicorn.run("reportscore.app:create_app", factory=True, workers=settings.api_processes, **common)


def _enable_metrics(settings: Any) -> Any:
    """Prometheus multiprocess mode for this command's processes (docs/monitoring.md); its directory goes at exit."""
    import atexit
    import signal

    from reportscore.monitoring import multiproc

    metrics_dir = multiproc.enable(settings.metrics_multiproc_dir)
    atexit.register(metrics_dir.close)

    def _terminated(signum: int, _frame: Any) -> None:
        # uvicorn re-raises SIGTERM after its graceful shutdown (atexit would not run): clean up, then die by it.
        metrics_dir.close()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, _terminated)
    return metrics_dir


def _distributed_settings(**overrides: Any) -> Any:
    settings = _settings(**overrides)
    if settings.mode != "distributed":
        _fail(
            "this command belongs to distributed mode: set REPORTSCORE_BROKER_URL (redis://… or amqp://…) and "
            "REPORTSCORE_DATABASE_URL (postgresql+psycopg://…). Embedded mode scores inside `reportscore serve`."
        )
    return settings


def _require_migrated(settings: Any) -> None:
    from reportscore.storage import migrate as migrations
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        current, head = migrations.current_revision(db), migrations.head_revision()
    except Exception as exc:
        _fail(f"cannot reach the database: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        db.dispose()
    if current != head:
        _fail(f"the database is at migration {current or 'none'}, not the latest ({head}): run `reportscore migrate`")


def _require_keys_unless_loopback(settings: Any) -> None:
    """Store the bootstrap key if one is configured; then refuse to serve openly on a non-loopback address."""
    from reportscore.api.auth import is_loopback
    from reportscore.security import keys
    from reportscore.storage import migrate as migrations
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        if db.is_sqlite:
            migrations.upgrade_to_head(db)  # what the app's start-up does anyway; the keys table must exist
        keys.ensure_bootstrap_key(db=db, settings=settings)
        exist = keys.any_key_created(db=db)
    except keys.KeyError_ as exc:
        _fail(str(exc))
    finally:
        db.dispose()
    if exist or is_loopback(settings.host):
        return
    if settings.insecure:
        logging.getLogger("reportscore.serve").warning(
            "INSECURE: --insecure given, serving without API keys on a non-loopback address",
            extra={"host": settings.host},
        )
        return
    _fail(
        f"refusing to serve on {settings.host} without API keys: anyone who can reach the port could use it.\n"
        "  Create a key first:  reportscore keys create --tenant <tenant> --name <name> --scopes submit,read\n"
        "  (or provision one with REPORTSCORE_BOOTSTRAP_API_KEY, from `reportscore keys generate`),\n"
        "  bind to 127.0.0.1, or pass --insecure to serve without authentication anyway."
    )


@app.command()
def worker(
    concurrency: Annotated[
        int, setting_option("worker_concurrency", "Pool processes of this Celery worker.")
    ] = SETTING_DEFAULTS["worker_concurrency"],
) -> None:
    """Run a Celery worker (distributed mode): consumes the queue, scores jobs, writes results to the database."""
    settings = _distributed_settings(worker_concurrency=concurrency)
    metrics_dir = _enable_metrics(settings)  # before anything imports prometheus_client
    from reportscore.monitoring import multiproc
    from reportscore.monitoring.logs import configure_logging
    from reportscore.runners.celery_app import create_celery_app

    configure_logging(level=settings.log_level, fmt=settings.log_format, log_file=settings.log_file)
    _require_migrated(settings)
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


@app.command("worker-ping")
def worker_ping(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = 2.0,
    any_host: Annotated[bool, typer.Option("--any-host", help="Accept a worker on any machine.")] = False,
) -> None:
    """Exit 0 when a worker on this machine answers a ping (a liveness/readiness probe), 1 otherwise."""
    settings = _distributed_settings()
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


@app.command()
def flower() -> None:
    """Run Flower, the Celery monitoring UI, on REPORTSCORE_HOST:REPORTSCORE_FLOWER_PORT, behind basic auth."""
    settings = _distributed_settings()
    if settings.flower_basic_auth is None:
        _fail("Flower must not run without authentication: set REPORTSCORE_FLOWER_BASIC_AUTH=user:password")
    auth = settings.flower_basic_auth.get_secret_value()
    if ":" not in auth:
        _fail("REPORTSCORE_FLOWER_BASIC_AUTH must look like user:password")
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


@app.command()
def migrate() -> None:
    """Apply database migrations up to the latest (safe to run again)."""
    settings = _settings()
    from reportscore.scoring.registration import ensure_champion
    from reportscore.scoring.store import StoreError
    from reportscore.security import keys
    from reportscore.storage import migrate as migrations
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        before = migrations.current_revision(db)
        outcome: list[bool] = []
        migrations.upgrade_to_head(db, then=lambda: outcome.append(ensure_champion(db=db, settings=settings)))
        after = migrations.current_revision(db)
        bootstrapped = bool(outcome and outcome[0])
        key_added = keys.ensure_bootstrap_key(db=db, settings=settings)
    except (keys.KeyError_, StoreError) as exc:
        _fail(str(exc))
    finally:
        db.dispose()
    err.print(f"database {settings.redacted()['effective_database_url']}: {before or 'empty'} -> {after}")
    if bootstrapped:
        err.print(f"registered and promoted {settings.model_path} as the first champion of {settings.model_name}")
    if key_added:
        err.print(f"stored REPORTSCORE_BOOTSTRAP_API_KEY for tenant {settings.bootstrap_api_key_tenant}")


app.command("score-file")(score_file)


@app.command("train-reference")
def train_reference(
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Where to write the model directory.", show_default="the bundled reference_model/ directory"),
    ] = None,
    n_reports: Annotated[int, typer.Option(help="Synthetic reports to generate (80% train, 20% holdout).")] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generator and of XGBoost.")] = 20261127,
    threads: Annotated[int, typer.Option(help="XGBoost training threads.")] = 2,
) -> None:
    """Train the reference XGBoost model on synthetic reports (reproducible) and write its model directory."""
    from reportscore.reference_model import REFERENCE_MODEL_DIR
    from reportscore.scoring.training import train_reference as train

    target = output_dir or REFERENCE_MODEL_DIR
    target.mkdir(parents=True, exist_ok=True)
    metrics = train(target, n_reports=n_reports, seed=seed, threads=threads, progress=sys.stderr.isatty())
    err.print(f"wrote {target}")
    typer.echo(json.dumps(metrics, indent=2, default=str))


@app.command("local-cluster")
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

    settings = _distributed_settings(api_processes=api_processes)
    command = [sys.executable, "-m", "reportscore.cli"]
    migrated = subprocess.run([*command, "migrate"], check=False)
    if migrated.returncode != 0:
        raise typer.Exit(code=migrated.returncode)
    specs: list[tuple[str, list[str]]] = [("api", ["serve", "--api-processes", str(api_processes)])]
    specs += [(f"worker-{i}", ["worker"]) for i in range(workers)]
    if flower:
        if settings.flower_basic_auth is None:
            _fail("set REPORTSCORE_FLOWER_BASIC_AUTH=user:password, or pass --no-flower")
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


@contextmanager
def _registry() -> Iterator[tuple[Any, Any]]:
    """(settings, database) for a ``models`` command; a registry error ends the command with its reason."""
    settings = _settings()
    from reportscore.scoring.registration import (
        NothingToRollBackError,
        RegistrationError,
        UnknownVersionError,
        ensure_champion,
    )
    from reportscore.scoring.store import StoreError
    from reportscore.storage import migrate as migrations
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        if db.is_sqlite:
            migrations.upgrade_to_head(db)
        elif not migrations.is_at_head(db):
            _fail("the database is not at the latest migration: run `reportscore migrate`")
        ensure_champion(db=db, settings=settings)
        yield settings, db
    except (RegistrationError, UnknownVersionError, NothingToRollBackError, StoreError) as exc:
        _fail(str(exc))
    finally:
        db.dispose()


def _print_versions(views: list[Any]) -> None:
    from rich.table import Table

    table = Table("version", "format", "registered", "by", "reference", "sha256", "champion")
    for v in views:
        table.add_row(
            v.version,
            v.format,
            v.registered_at.isoformat(timespec="seconds"),
            v.registered_by,
            v.reference_source,
            v.sha256[:12],
            "*" if v.is_champion else "",
        )
    Console(width=160 if not sys.stdout.isatty() else None).print(table)


@models_app.command("register")
def models_register(
    path: Annotated[
        Path, typer.Argument(help="The artifact: .json/.ubj, .skops, .onnx, .keras (.pkl/.joblib if trusted)")
    ],
    version: Annotated[str, typer.Option(help="The new version's name, e.g. 1.1.0.")],
    schema: Annotated[Path | None, typer.Option(help="Feature schema JSON (default: the service's own).")] = None,
    reference: Annotated[
        Path | None, typer.Option(help="A Parquet sample of real reports for the reference distribution.")
    ] = None,
) -> None:
    """Validate and register a new version (it does not serve until promoted)."""
    from reportscore.scoring.registration import register_model

    with _registry() as (settings, db):
        view = register_model(
            db=db, settings=settings, artifact=path, version=version, schema=schema, reference=reference
        )
    err.print(f"registered {view.name} {view.version} ({view.format}, sha256 {view.sha256[:12]}); not serving yet")
    err.print(f"promote it with: reportscore models promote {view.version}")


@models_app.command("list")
def models_list() -> None:
    """List the registered versions; * marks the champion."""
    from reportscore.scoring.registration import list_models

    with _registry() as (settings, db):
        _print_versions(list_models(db=db, settings=settings))


@models_app.command("show")
def models_show(version: Annotated[str, typer.Argument(help="The version to show.")]) -> None:
    """Print one version's metadata, feature schema and reference distribution as JSON."""
    from reportscore.scoring.registration import show_model

    with _registry() as (settings, db):
        view = show_model(db=db, settings=settings, version=version)
    typer.echo(json.dumps(dataclasses.asdict(view), indent=2, default=str))


@models_app.command("promote")
def models_promote(version: Annotated[str, typer.Argument(help="The version to serve.")]) -> None:
    """Make a version the champion; every process switches within REPORTSCORE_MODEL_REFRESH_S, no restart."""
    from reportscore.scoring.registration import promote

    with _registry() as (settings, db):
        view = promote(db=db, settings=settings, version=version)
    err.print(f"{view.name} {view.version} is the champion")


@models_app.command("rollback")
def models_rollback() -> None:
    """Restore the previous champion from the promotion history."""
    from reportscore.scoring.registration import rollback

    with _registry() as (settings, db):
        view = rollback(db=db, settings=settings)
    err.print(f"rolled back: {view.name} {view.version} is the champion")


@contextmanager
def _keys_db() -> Iterator[Any]:
    """The database for a ``keys`` command (SQLite is migrated; PostgreSQL must be); a key error ends it."""
    settings = _settings()
    from reportscore.security.keys import KeyError_
    from reportscore.storage import migrate as migrations
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        if db.is_sqlite:
            migrations.upgrade_to_head(db)
        elif not migrations.is_at_head(db):
            _fail("the database is not at the latest migration: run `reportscore migrate`")
        yield db
    except KeyError_ as exc:
        _fail(str(exc))
    finally:
        db.dispose()


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Whose key: its tasks and results are visible to this tenant only.")],
    name: Annotated[str, typer.Option(help="What the key is for, e.g. moderation-prod.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: submit, read, feedback, admin, metrics.")],
    rate: Annotated[float | None, typer.Option(help="Requests per second allowed (default: unlimited).")] = None,
    burst: Annotated[int | None, typer.Option(help="Requests at once above the rate (default: the rate).")] = None,
) -> None:
    """Create an API key and print it on stdout. It is shown this once: only its hash is stored."""
    from reportscore.security.keys import create_key

    with _keys_db() as db:
        key, view = create_key(
            db=db,
            tenant=tenant,
            name=name,
            scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            rate=rate,
            burst=burst,
        )
    typer.echo(key)
    limit = f", {view.rate:g}/s burst {view.burst}" if view.rate is not None else ""
    err.print(
        f"created key {view.prefix} for tenant {view.tenant} ({', '.join(view.scopes)}{limit}). "
        "It is shown only now: send it as the X-API-Key header; revoke with "
        f"`reportscore keys revoke {view.prefix}`.",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Also list revoked keys.")] = False,
) -> None:
    """List keys (prefix, tenant, scopes, rate); never their secrets."""
    from rich.table import Table

    from reportscore.security.keys import list_keys

    with _keys_db() as db:
        views = list_keys(db=db, tenant=tenant, include_revoked=include_revoked)
    table = Table("prefix", "tenant", "name", "scopes", "rate/s", "burst", "created", "revoked")
    for v in views:
        table.add_row(
            v.prefix,
            v.tenant,
            v.name,
            ",".join(v.scopes),
            "" if v.rate is None else f"{v.rate:g}",
            "" if v.burst is None else str(v.burst),
            v.created_at.isoformat(timespec="seconds"),
            "" if v.revoked_at is None else v.revoked_at.isoformat(timespec="seconds"),
        )
    Console(width=160 if not sys.stdout.isatty() else None).print(table)


@keys_app.command("revoke")
def keys_revoke(prefix: Annotated[str, typer.Argument(help="The key's prefix (from `keys list`).")]) -> None:
    """Revoke a key: every API process refuses it within REPORTSCORE_AUTH_CACHE_S."""
    from reportscore.security.keys import revoke_key

    with _keys_db() as db:
        revoked = revoke_key(db=db, prefix=prefix)
    if not revoked:
        _fail(f"no active API key with prefix {prefix} (see `reportscore keys list --all`)")
    err.print(f"revoked {prefix}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random key without storing it (a value for REPORTSCORE_BOOTSTRAP_API_KEY)."""
    from reportscore.security.keys import generate

    typer.echo(generate())


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON, with secrets and passwords redacted."""
    settings = _settings()
    typer.echo(json.dumps(settings.redacted(), indent=2, default=str))


@config_app.command("docs")
def config_docs() -> None:
    """Print the settings reference as Markdown (the source of docs/configuration.md)."""
    from reportscore.settings import settings_markdown

    typer.echo(settings_markdown(), nl=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
