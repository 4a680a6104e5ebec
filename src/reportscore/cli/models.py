"""``reportscore models …``: the model registry (register, list, show, promote, roll back)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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
    version: Annotated[str, typer.Option(help="The new version's name, e.g. 1.1.0.")],
    path: Annotated[
        Path | None,
        typer.Argument(help="The artifact: .json/.ubj, .skops, .onnx, .keras (.pkl/.joblib if trusted)"),
    ] = None,
    schema: Annotated[Path | None, typer.Option(help="Feature schema JSON (default: the service's own).")] = None,
    reference: Annotated[
        Path | None, typer.Option(help="A Parquet sample of real reports for the reference distribution.")
    ] = None,
    remote: Annotated[
        str | None,
        typer.Option(
            help="Instead of an artifact: a model served by a V2 (Open Inference Protocol) endpoint, "
            "http://host:port/v2/models/NAME[/versions/V].",
            rich_help_panel="Remote model",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            help="With --remote: the output holding the score, e.g. predict_proba (default: the first one).",
            rich_help_panel="Remote model",
        ),
    ] = None,
    output_column: Annotated[
        int | None,
        typer.Option(
            help="With --remote: the output's column holding the score (default: 1 of [N, 2], else 0).",
            rich_help_panel="Remote model",
        ),
    ] = None,
    input_name: Annotated[
        str | None,
        typer.Option(
            help="With --remote: the name of the input tensor (default: input-0).", rich_help_panel="Remote model"
        ),
    ] = None,
) -> None:
    """Validate and register a new version (it does not serve until promoted): an artifact, or with --remote a
    model served by a V2 endpoint."""
    from reportscore.scoring.registration import register_model, register_remote

    if (path is None) == (remote is None):
        fail("give either an artifact or --remote URL")
    if remote is None and (output, output_column, input_name) != (None, None, None):
        fail("--output, --output-column and --input-name go with --remote")
    with _registry() as (settings, db):
        if remote is not None:
            view = register_remote(
                db=db,
                settings=settings,
                url=remote,
                version=version,
                schema=schema,
                reference=reference,
                output=output,
                output_column=output_column,
                input_name=input_name,
            )
        else:
            assert path is not None
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
def models_promote(
    version: Annotated[str, typer.Argument(help="The version to serve.")],
    require_better: Annotated[
        str | None,
        typer.Option(
            help="Refuse unless the comparison with the champion shows this improvement: auc:0.01 (absolute) or "
            "auc:5% (relative); metrics auc, pr_auc, precision@10, brier."
        ),
    ] = None,
) -> None:
    """Make a version the champion; every process switches within REPORTSCORE_MODEL_REFRESH_S, no restart."""
    from reportscore.scoring.registration import promote

    with _registry() as (settings, db):
        if require_better is not None:
            from reportscore.shadow.compare import compare_with_champion
            from reportscore.shadow.evidence import EvidenceError, Requirement

            try:
                requirement = Requirement.parse(require_better)
                evidence = requirement.check(compare_with_champion(db=db, settings=settings, challenger=version))
            except (ValueError, LookupError) as exc:
                fail(f"not promoted: {exc}" if isinstance(exc, EvidenceError) else str(exc))
            err.print(evidence)
        view = promote(db=db, settings=settings, version=version)
    err.print(f"{view.name} {view.version} is the champion")


@models_app.command("rollback")
def models_rollback() -> None:
    """Restore the previous champion from the promotion history."""
    from reportscore.scoring.registration import rollback

    with _registry() as (settings, db):
        view = rollback(db=db, settings=settings)
    err.print(f"rolled back: {view.name} {view.version} is the champion")


@models_app.command("shadow")
def models_shadow(
    version: Annotated[str, typer.Argument(help="The registered version to score beside the champion.")],
    fraction: Annotated[float, typer.Option(help="Share of reports it scores (0 < F <= 1).")] = 1.0,
    off: Annotated[bool, typer.Option("--off", help="Stop shadowing this version (its scores stay).")] = False,
) -> None:
    """Score a version beside the champion off the answer's path (at most REPORTSCORE_MAX_SHADOWS at once);
    every process follows within REPORTSCORE_MODEL_REFRESH_S."""
    from reportscore.shadow import admin

    with _registry() as (settings, db):
        if off:
            stopped = admin.stop_shadow(db=db, settings=settings, version=version)
            err.print(f"{version} is no longer a shadow" if stopped else f"{version} was not a shadow")
            return
        try:
            shadows = admin.start_shadow(db=db, settings=settings, version=version, fraction=fraction)
        except ValueError as exc:
            fail(str(exc))
    err.print("shadows: " + ", ".join(f"{s.version} (fraction {s.fraction:g})" for s in shadows))


@models_app.command("compare")
def models_compare(
    challenger: Annotated[str, typer.Argument(help="The version to compare (a shadow, or an earlier champion).")],
    champion: Annotated[str | None, typer.Option(help="Default: the current champion.")] = None,
    since: Annotated[datetime | None, typer.Option(help="Scored at or after (UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Scored before (UTC).")] = None,
    abuse_type: Annotated[str | None, typer.Option(help="Only this abuse type (MSG or PRF).")] = None,
) -> None:
    """Compare two versions on the reports both scored: agreement, top-k overlap, histograms and, on reviewed
    reports, ROC AUC, PR AUC, precision@k and Brier with 95% CIs and a verdict (JSON)."""
    from reportscore.shadow.compare import compare_with_champion

    def utc(t: datetime | None) -> datetime | None:
        return None if t is None else t.replace(tzinfo=UTC) if t.tzinfo is None else t

    with _registry() as (settings, db):
        try:
            result = compare_with_champion(
                db=db,
                settings=settings,
                challenger=challenger,
                champion=champion,
                since=utc(since),
                until=utc(until),
                abuse_type=abuse_type,
            )
        except LookupError as exc:
            fail(str(exc))
    typer.echo(json.dumps(result.as_dict(), indent=2))
    err.print(f"verdict: {result.challenger} vs {result.champion}: {result.verdict}")


models_app.command("metrics")(metrics_command)
