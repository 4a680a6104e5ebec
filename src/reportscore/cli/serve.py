"""``reportscore serve`` and ``reportscore migrate``: running the HTTP API and preparing its database."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from reportscore.cli.common import (
    SETTING_DEFAULTS,
    enable_metrics,
    env_var,
    err,
    fail,
    load_settings,
    require_migrated,
    setting_option,
)


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
            fail("--workers is the old spelling of --api-processes: give only --api-processes")
        err.print(
            "warning: `serve --workers` is deprecated and will be removed: use `serve --api-processes` "
            f"(or {env_var('api_processes')}); `--workers` means Celery worker processes elsewhere",
            highlight=False,
        )
        api_processes = workers
    settings = load_settings(host=host, port=port, data_dir=data_dir, api_processes=api_processes, insecure=insecure)
    enable_metrics(settings)  # before anything imports prometheus_client
    import uvicorn

    from reportscore.app import create_app
    from reportscore.monitoring.logs import configure_logging

    configure_logging(level=settings.log_level, fmt=settings.log_format, log_file=settings.log_file)
    require_migrated(settings)  # passes for embedded SQLite, which the app migrates at its start
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


def _require_keys_unless_loopback(settings: Any) -> None:
    """Store the bootstrap key if one is configured; then refuse to serve openly on a non-loopback address."""
    from reportscore.api.auth import is_loopback
    from reportscore.security import keys
    from reportscore.storage import migrate as migrations
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        if db.migrates_at_start:
            migrations.upgrade_to_head(db)  # what the app's start-up does anyway; the keys table must exist
        keys.ensure_bootstrap_key(db=db, settings=settings)
        exist = keys.any_key_created(db=db)
    except keys.KeyError_ as exc:
        fail(str(exc))
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
    fail(
        f"refusing to serve on {settings.host} without API keys: anyone who can reach the port could use it.\n"
        "  Create a key first:  reportscore keys create --tenant <tenant> --name <name> --scopes submit,read\n"
        "  (or provision one with REPORTSCORE_BOOTSTRAP_API_KEY, from `reportscore keys generate`),\n"
        "  bind to 127.0.0.1, or pass --insecure to serve without authentication anyway."
    )


def migrate() -> None:
    """Apply database migrations up to the latest (safe to run again)."""
    settings = load_settings()
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
        fail(str(exc))
    finally:
        db.dispose()
    err.print(f"database {settings.redacted()['effective_database_url']}: {before or 'empty'} -> {after}")
    if bootstrapped:
        err.print(f"registered and promoted {settings.model_path} as the first champion of {settings.model_name}")
    if key_added:
        err.print(f"stored REPORTSCORE_BOOTSTRAP_API_KEY for tenant {settings.bootstrap_api_key_tenant}")
