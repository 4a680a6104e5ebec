"""What every ``reportscore`` command shares: the Typer apps, options backed by settings, failing with a reason."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from reportscore.settings import Settings

# Help text is printed as written: rich markup would swallow anything in square brackets.
HELP: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": None}
app = typer.Typer(
    name="reportscore",
    help="Score user-generated abuse reports so moderators see the most urgent first.",
    add_completion=False,
    **HELP,
)
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


def load_settings(**overrides: Any) -> Any:
    """Build and validate Settings (env vars + CLI overrides); exit 2 with the reason when impossible."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        fail("invalid configuration:\n" + "\n".join(f"  - {_describe(e)}" for e in exc.errors()))


def _describe(error: Any) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()))
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit 2."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def distributed_settings(**overrides: Any) -> Any:
    """Settings for a command of distributed mode; exit 2 with what to set when they describe embedded mode."""
    settings = load_settings(**overrides)
    if settings.mode != "distributed":
        fail(
            "this command belongs to distributed mode: set REPORTSCORE_BROKER_URL (redis://… or amqp://…) and "
            "REPORTSCORE_DATABASE_URL (postgresql+psycopg://…). Embedded mode scores inside `reportscore serve`."
        )
    return settings


def enable_metrics(settings: Any) -> Any:
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


def require_migrated(settings: Any) -> None:
    """Exit 2 unless the database is reachable and at the latest migration (a database the service migrates at its
    own start, embedded SQLite, passes)."""
    from reportscore.storage import migrate as migrations
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        if db.migrates_at_start:
            return
        current, head = migrations.current_revision(db), migrations.head_revision()
    except Exception as exc:
        fail(f"cannot reach the database: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        db.dispose()
    if current != head:
        fail(f"the database is at migration {current or 'none'}, not the latest ({head}): run `reportscore migrate`")


def ensure_schema(db: Any) -> None:
    """Migrate a database the service migrates at its own start (embedded SQLite), as ``serve`` would; otherwise exit 2
    unless it is at the latest migration."""
    from reportscore.storage import migrate as migrations

    if db.migrates_at_start:
        migrations.upgrade_to_head(db)
    elif not migrations.is_at_head(db):
        fail("the database is not at the latest migration: run `reportscore migrate`")


def wide_console() -> Console:
    """stdout for tables: not wrapped to 80 columns when piped."""
    return Console(width=160 if not sys.stdout.isatty() else None)
