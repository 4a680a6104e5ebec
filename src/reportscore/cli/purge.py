"""``reportscore purge``: delete old finished jobs with their reports, in short bounded transactions."""

from __future__ import annotations

from typing import Annotated

import typer

from reportscore.cli.common import SETTING_DEFAULTS, ensure_schema, err, fail, load_settings, setting_option


def purge(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Delete jobs created longer ago than this: 90d, 12w, 36h.")
    ],
    keep_labelled: Annotated[
        bool,
        typer.Option(
            "--keep-labelled",
            help="Keep every job with a report a moderator recorded an outcome for (training and metrics data).",
        ),
    ] = False,
    batch_jobs: Annotated[
        int,
        setting_option("purge_batch_jobs", "Jobs deleted per transaction.", "--batch-jobs"),
    ] = SETTING_DEFAULTS["purge_batch_jobs"],
) -> None:
    """Delete finished jobs created before now minus --older-than, with their reports, scores, outcomes, reasons
    and callbacks (drift histograms of those windows too), oldest first. Unfinished jobs are never deleted. Safe
    while the service runs: each transaction deletes at most --batch-jobs jobs, and the purge pauses between
    them so scoring keeps its pace."""
    from sqlalchemy.exc import SQLAlchemyError

    from reportscore.durations import parse_duration
    from reportscore.retention.service import purge as run_purge
    from reportscore.storage.db import Database

    try:
        older_than_s = parse_duration(older_than)
    except ValueError as exc:
        fail(f"--older-than {exc}")
    if batch_jobs < 1:
        fail("--batch-jobs must be at least 1")
    db = Database.from_settings(load_settings())
    try:
        ensure_schema(db)
        result = run_purge(
            db,
            older_than_s=older_than_s,
            keep_labelled=keep_labelled,
            batch_jobs=batch_jobs,
            progress=lambda n: err.print(f"deleted {n} jobs", highlight=False),
        )
    except SQLAlchemyError as exc:
        fail(f"the database: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        db.dispose()
    typer.echo(
        f"purged {result.jobs} jobs created before {result.before.isoformat()} in {result.batches} "
        f"transaction(s), {result.seconds:.1f} s; {result.drift_rows} drift histogram rows"
    )
