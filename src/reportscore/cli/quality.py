"""``reportscore models metrics``: online quality per model version and window, from moderators' outcomes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from reportscore.cli.common import ensure_schema, fail, load_settings, wide_console


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name}: not an ISO 8601 time ({value!r})")
    if parsed.tzinfo is None:
        fail(f"--{name}: give a UTC offset, e.g. {value}+00:00")
    return parsed


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_command(
    version: Annotated[str | None, typer.Option(help="One version (default: every version with outcomes).")] = None,
    since: Annotated[str | None, typer.Option(help="Reports scored from (ISO 8601 with offset).")] = None,
    until: Annotated[str | None, typer.Option(help="Reports scored before (ISO 8601 with offset).")] = None,
    window: Annotated[int | None, typer.Option(help="Windows of this many seconds (a multiple of 3600).")] = None,
    k: Annotated[
        int | None, typer.Option(help="The k of precision@k (default REPORTSCORE_QUALITY_PRECISION_K).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full metrics as JSON.")] = False,
) -> None:
    """Online quality per version and window (AUC, PR AUC, precision@k, Brier, ECE, label delay), from outcomes."""
    from reportscore.quality.service import InvalidWindow, version_metrics
    from reportscore.storage.db import Database

    settings = load_settings()
    start, end = _when(since, "since"), _when(until, "until")
    db = Database.from_settings(settings)
    try:
        ensure_schema(db)
        windows = version_metrics(
            db=db,
            model_name=settings.model_name,
            version=version,
            since=start,
            until=end,
            window_s=window,
            k=k or settings.quality_precision_k,
        )
    except InvalidWindow as exc:
        fail(str(exc))
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps([w.as_dict() for w in windows], indent=2, default=str))
        return
    from rich.table import Table

    columns = ("labelled", "positive_rate", "roc_auc", "pr_auc", "precision_at_k", "brier", "ece")
    table = Table("version", "window start", *columns, "delay p50 ≤ s")
    for w in windows:
        m = w.metrics
        start_text = w.start.isoformat() if w.start else "-"
        table.add_row(w.model_version, start_text, *(_fmt(m[c]) for c in columns), _fmt(m["label_delay"]["p50_le_s"]))
    wide_console().print(table)
