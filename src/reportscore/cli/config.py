"""``reportscore config …``: the effective configuration and the settings reference."""

from __future__ import annotations

import json

import typer

from reportscore.cli.common import HELP, load_settings

config_app = typer.Typer(help="Inspect the effective configuration.", **HELP)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON, with secrets and passwords redacted."""
    settings = load_settings()
    typer.echo(json.dumps(settings.redacted(), indent=2, default=str))


@config_app.command("docs")
def config_docs() -> None:
    """Print the settings reference as Markdown (the source of docs/configuration.md)."""
    from reportscore.settings_docs import settings_markdown

    typer.echo(settings_markdown(), nl=False)
