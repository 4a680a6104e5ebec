"""``reportscore drift``: PSI per feature and of the score, per window, against the version's reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from reportscore.cli.common import ensure_schema, fail, load_settings, wide_console


def drift(
    version: Annotated[str | None, typer.Option(help="Model version (default: the champion).")] = None,
    window: Annotated[
        str | None, typer.Option(help="Window length, a multiple of 1h: 1h, 6h, 1d (default: drift_window_s).")
    ] = None,
    last: Annotated[int, typer.Option(min=1, help="How many of the latest windows to show.")] = 24,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show drift: for each window, the number of scored reports and the PSI of every feature and of the score
    against the stored reference of the version (ok / warn / alert by REPORTSCORE_DRIFT_PSI_WARN and _ALERT)."""
    from reportscore.drift.query import DriftQueryError, drift_for
    from reportscore.durations import parse_duration
    from reportscore.storage.db import Database

    settings = load_settings()
    try:
        window_s = int(parse_duration(window)) if window is not None else settings.drift_window_s
    except ValueError as exc:
        fail(f"--window {exc}")
    db = Database.from_settings(settings)
    try:
        ensure_schema(db)
        until = datetime.now(UTC)
        report = drift_for(
            db, settings=settings, version=version, window_s=window_s, since=until - timedelta(seconds=window_s * last)
        )
    except DriftQueryError as exc:
        fail(str(exc))
    finally:
        db.dispose()
    if as_json:
        from reportscore.drift.query import as_document

        typer.echo(json.dumps(as_document(report), indent=2))
        return
    features = list(report.windows[0].psi) if report.windows else []
    table = Table(title=f"drift of {report.model_version}: PSI per {window_s // 3600}h window")
    for col in ("window start (UTC)", "reports", *features):
        table.add_column(col, justify="left" if col.startswith("window") else "right")
    for w in report.windows:
        cells = [_cell(w.psi[f], w.status[f]) for f in features]
        table.add_row(w.start.strftime("%Y-%m-%d %H:%M"), str(w.n_reports), *cells)
    console = wide_console()
    if not report.windows:
        console.print(f"no scored reports for {report.model_version} in the last {last} windows")
        return
    console.print(table)
    console.print(
        f"thresholds: warn >= {report.thresholds.warn}, alert >= {report.thresholds.alert}; windows with fewer "
        f"than {report.thresholds.min_reports} reports are not judged"
    )


def _cell(value: float | None, status: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if status in ("ok", "too_few") else f"{value:.3f} {status}"
