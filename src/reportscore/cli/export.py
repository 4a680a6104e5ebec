"""``reportscore export``: reports out to the data platform as Parquet, CSV or JSON Lines, locally or in S3."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from reportscore.cli.common import err, fail, load_settings
from reportscore.export.sinks import FORMATS


def parse_utc(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or time; without an offset it is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r}: expected an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T06:00:00Z")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def export(
    out: Annotated[str, typer.Option("--out", help="Target directory: a local path or s3://bucket/prefix.")],
    fmt: Annotated[str, typer.Option("--format", help=f"File format: {', '.join(FORMATS)}.")] = "parquet",
    since: Annotated[
        str | None, typer.Option(help="Reports whose job was created at or after this UTC date/time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Reports whose job was created before this UTC date/time.")] = None,
    incremental: Annotated[
        bool,
        typer.Option(
            help="Export only what is new since this export's last run (its watermark is kept in the database); "
            "each report is exported exactly once across runs."
        ),
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="The incremental export's name (default: the format and the target).")
    ] = None,
    settle_s: Annotated[
        float,
        typer.Option(
            help="An incremental run leaves out jobs created in the last this many seconds (still in flight)."
        ),
    ] = 60.0,
    page_size: Annotated[int, typer.Option(min=1, help="Reports read per database query.")] = 10_000,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint, e.g. http://minio:9000 (default: AWS).")
    ] = None,
    region: Annotated[str | None, typer.Option(help="S3 region.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Export reports with their job, score, model version, outcome and reasons, one directory per day
    (date=YYYY-MM-DD/). Credentials for S3 come from the standard AWS chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)."""
    from pyarrow.lib import ArrowException
    from sqlalchemy.exc import SQLAlchemyError

    from reportscore.export.service import RunSupersededError, export_reports
    from reportscore.export.sinks import ExportTargetError, Target
    from reportscore.storage import migrate as migrations
    from reportscore.storage.db import Database

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    since_at, until_at = parse_utc(since, "--since"), parse_utc(until, "--until")
    if since_at and until_at and since_at >= until_at:
        fail("--since must be before --until")
    try:
        target = Target(out, endpoint_url=endpoint_url, region=region)
    except ExportTargetError as exc:
        fail(str(exc))
    export_name = (name or f"{fmt}:{out.rstrip('/')}")[:512] if incremental else None

    db = Database.from_settings(load_settings())
    bar = Progress(
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not progress,
    )
    task = bar.add_task("reports", total=None)
    try:
        if not migrations.is_at_head(db):
            fail("the database is not at the latest migration: run `reportscore migrate`")
        with bar:
            result = export_reports(
                db=db,
                target=target,
                fmt=fmt,
                since=since_at,
                until=until_at,
                incremental_name=export_name,
                settle_s=settle_s,
                page_size=page_size,
                on_total=lambda total: bar.update(task, total=total),
                on_rows=lambda n: bar.advance(task, n),
            )
    except RunSupersededError as exc:
        fail(str(exc))
    except (OSError, ArrowException) as exc:
        fail(f"writing to {out}: {exc}. Check the target, and for s3:// the endpoint, region and AWS credentials")
    except SQLAlchemyError as exc:
        fail(f"reading the database: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        db.dispose()
    resumed = " (the range of an interrupted run, written again)" if result.resumed else ""
    err.print(
        f"exported {result.rows} reports into {len(result.files)} file(s) under {out}{resumed}; "
        f"run {result.run_id}, up to {result.until.isoformat() if result.until else '-'}",
        highlight=False,
    )
    for path in result.files:
        typer.echo(path)
