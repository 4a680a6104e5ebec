"""``reportscore models …``: the model registry (register, list, show, promote, roll back)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from reportscore.cli.common import HELP, ensure_schema, err, fail, load_settings, wide_console
from reportscore.cli.quality import metrics_command

models_app = typer.Typer(
    help="The model registry: register, list, show, promote and roll back versions of the served model.", **HELP
)


@contextmanager
def _registry() -> Iterator[tuple[Any, Any]]:
    """(settings, database) for a ``models`` command; a registry error ends the command with its reason."""
    settings = load_settings()
    from reportscore.scoring.registration import (
        NothingToRollBackError,
        RegistrationError,
        UnknownVersionError,
        ensure_champion,
    )
    from reportscore.scoring.store import StoreError
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        ensure_schema(db)
        ensure_champion(db=db, settings=settings)
        yield settings, db
    except (RegistrationError, UnknownVersionError, NothingToRollBackError, StoreError) as exc:
        fail(str(exc))
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
    wide_console().print(table)


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


models_app.command("metrics")(metrics_command)
