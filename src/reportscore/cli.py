"""The ``reportscore`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

app = typer.Typer(
    name="reportscore",
    help="Score user-generated abuse reports so moderators see the most urgent first.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
err = Console(stderr=True)


def _settings(**overrides: Any) -> Any:
    """Build and validate Settings (env vars + CLI overrides); exit 2 with the reason when impossible."""
    from reportscore.settings import Settings

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
    host: Annotated[str | None, typer.Option(help="Address to bind [env REPORTSCORE_HOST; default 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env REPORTSCORE_PORT; default 8081].")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory for SQLite [env REPORTSCORE_DATA_DIR; default ./data]."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="API processes [env REPORTSCORE_API_PROCESSES]. Embedded mode allows 1."),
    ] = None,
) -> None:
    """Serve the HTTP API. Embedded mode (the default): SQLite, migrated at start, in-process scoring threads."""
    settings = _settings(host=host, port=port, data_dir=data_dir, api_processes=workers)
    import uvicorn

    from reportscore.app import create_app
    from reportscore.monitoring.logs import configure_logging

    configure_logging(level=settings.log_level, fmt=settings.log_format, log_file=settings.log_file)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_drain_s),
        server_header=False,
    )


@app.command()
def migrate() -> None:
    """Apply database migrations up to the latest (safe to run again)."""
    settings = _settings()
    from reportscore.storage import migrate as migrations
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        before = migrations.current_revision(db)
        migrations.upgrade_to_head(db)
        after = migrations.current_revision(db)
    finally:
        db.dispose()
    err.print(f"database {settings.redacted()['effective_database_url']}: {before or 'empty'} -> {after}")


@app.command("train-reference")
def train_reference(
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Where to write the model directory [default: the bundled reference_model/ directory]."),
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
