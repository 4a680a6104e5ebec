"""``reportscore score-file``: the command-line adapter of bulk file scoring (``reportscore.bulk.service``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from reportscore.cli.common import ensure_schema, err, fail, load_settings


def score_file(
    source: Annotated[
        Path, typer.Argument(metavar="IN", help="Reports to score: .csv, .parquet (.pq) or .jsonl (.ndjson).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the scores (format by suffix).")],
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="Where to write invalid rows with their reason.", show_default="OUT with .rejects before its suffix"
        ),
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="Your own id column: copied to the scores and the rejects.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Score with this registered version.", show_default="the champion")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows read, scored and written at a time.")] = 10_000,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a stopped run after its last complete chunk.")
    ] = False,
    persist: Annotated[
        bool,
        typer.Option("--persist", help="Also store each chunk as a finished job (GET /task, the moderation queue)."),
    ] = False,
    owner: Annotated[str, typer.Option(help="The tenant owning persisted jobs.")] = "anonymous",
    stop_after_chunks: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,
) -> None:
    """Score a CSV, Parquet or JSON Lines file in chunks, in constant memory.

    Every valid row gets its score and the model version; every invalid row goes to the rejects file with its row
    number and the API's reason, and never stops the run. OUT is written atomically when the run completes; a
    stopped run continues with --resume.
    """
    from reportscore.bulk import service
    from reportscore.bulk.files import FileFormatError, count_rows, format_of

    try:
        for path in (source, output, rejects or service.rejects_path_for(output)):
            format_of(path)
    except FileFormatError as exc:
        fail(str(exc))
    if not source.is_file():
        fail(f"{source}: no such file")
    with _model_and_db(model) as (db, serving):
        jobs: Any = None
        if persist:
            from reportscore.bulk.persist import ChunkJobs

            def jobs(run_key: str) -> ChunkJobs:
                return ChunkJobs(
                    db=db, owner=owner, model_name=serving.name, model_version=serving.version, run_key=run_key
                )

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, disable=not err.is_terminal) as bar:
            task = bar.add_task(f"scoring {source.name}", total=count_rows(source), rate="-")
            try:
                summary = service.score_file(
                    source=source,
                    target=output,
                    model=serving,
                    rejects=rejects,
                    id_column=id_column,
                    chunk_rows=chunk_rows,
                    resume=resume,
                    jobs=jobs,
                    stop_after_chunks=stop_after_chunks,
                    progress=lambda rows: _advance(bar, task, rows),
                )
            except (FileFormatError, service.ResumeError, FileNotFoundError) as exc:
                fail(str(exc))
    rate = (summary.rows - summary.resumed_rows) / summary.elapsed_s if summary.elapsed_s else 0.0
    resumed = f", {summary.resumed_chunks} chunks kept from the stopped run" if summary.resumed_chunks else ""
    persisted = f", {summary.jobs_created} jobs stored" if persist else ""
    err.print(
        f"{summary.rows:,} rows: {summary.scored:,} scored with {serving.name} {summary.model_version}, "
        f"{summary.rejected:,} rejected{resumed}{persisted} ({rate:,.0f} rows/s)"
    )
    if summary.stopped:
        err.print(f"stopped after {summary.chunks} chunks: run again with --resume to finish {output}")
    else:
        err.print(f"scores: {summary.output}  rejects: {summary.rejects}")


def _advance(bar: Any, task: Any, rows: int) -> None:
    bar.advance(task, rows)
    speed = bar.tasks[task].speed
    bar.update(task, rate=f"{speed:,.0f}" if speed else "-")


@contextmanager
def _model_and_db(version: str | None) -> Iterator[tuple[Any, Any]]:
    """(database, loaded model): the registry's champion, or ``version``; errors end the command."""
    from reportscore.scoring.formats.base import ModelLoadError
    from reportscore.scoring.registration import ensure_champion
    from reportscore.scoring.registry import load_version
    from reportscore.scoring.store import StoreError
    from reportscore.storage.db import Database

    settings = load_settings()
    db = Database.from_settings(settings)
    try:
        try:
            ensure_schema(db)
            ensure_champion(db=db, settings=settings)
            serving = load_version(db=db, settings=settings, version=version)
        except (ModelLoadError, StoreError) as exc:
            fail(str(exc))
        yield db, serving
    finally:
        db.dispose()
