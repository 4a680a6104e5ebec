"""Score a whole file: read it in chunks, validate, score, write each chunk's part, assemble the output atomically.

Each chunk's scores and rejects are written to a staging directory beside the output (``.<name>.parts/``), then
the manifest records the chunk as complete. A stopped run continues with ``resume=True`` after the last complete
chunk (the manifest also pins the input's sha256 and the run's options, so a resume never mixes two runs). The
output and rejects files appear only when every chunk is done, each by an atomic rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from reportscore.bulk import files
from reportscore.bulk.files import Chunk, FileFormatError, Format
from reportscore.bulk.persist import ChunkJobs
from reportscore.bulk.validation import FIELDS, validate
from reportscore.scoring.features import REPORT_FIELDS
from reportscore.scoring.registry import ServingModel

MANIFEST = "manifest.json"
DEFAULT_CHUNK_ROWS: Final = 10_000


class ResumeError(ValueError):
    """The stopped run in the staging directory is not this run (another input, model or options)."""


@dataclass(frozen=True)
class Summary:
    """What a run did."""

    rows: int
    scored: int
    rejected: int
    chunks: int
    resumed_chunks: int
    """Chunks already complete from a stopped run (not scored again)."""
    resumed_rows: int
    """Input rows of those chunks."""
    model_version: str
    output: Path
    rejects: Path
    jobs_created: int
    stopped: bool
    """True when the run stopped early on request: the output is not written yet; resume to finish it."""
    elapsed_s: float


def rejects_path_for(target: Path) -> Path:
    """The default rejects file: ``OUT``'s name with ``.rejects`` before its suffix."""
    return target.with_name(f"{target.stem}.rejects{target.suffix}")


def staging_dir_for(target: Path) -> Path:
    return target.with_name(f".{target.name}.parts")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def score_file(
    *,
    source: Path,
    target: Path,
    model: ServingModel,
    rejects: Path | None = None,
    id_column: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    resume: bool = False,
    jobs: Callable[[str], ChunkJobs] | None = None,
    stop_after_chunks: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Score every row of ``source`` into ``target`` (invalid rows go to ``rejects`` with their reason).

    ``jobs``: given the run's key, the store of each chunk as a finished job (``--persist``). Raises
    FileNotFoundError, FileFormatError or ResumeError before writing anything.
    """
    started = time.perf_counter()
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    rejects = rejects or rejects_path_for(target)
    in_fmt, out_fmt, rej_fmt = files.format_of(source), files.format_of(target), files.format_of(rejects)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    if len({source.resolve(), target.resolve(), rejects.resolve()}) < 3:
        raise FileFormatError("the input, the output and the rejects file must be three different files")
    if id_column is not None and id_column in REPORT_FIELDS:
        raise FileFormatError(f"--id-column {id_column!r} is a report field; name your own id column")
    files.check_columns(source, id_column=id_column)
    fingerprint = file_sha256(source)
    run = {
        "source_sha256": fingerprint,
        "chunk_rows": chunk_rows,
        "id_column": id_column,
        "model": [model.name, model.version, model.sha256],
        "formats": [in_fmt, out_fmt, rej_fmt],
        "persist": jobs is not None,
    }
    staging = staging_dir_for(target)
    state = _start(staging, run, resume=resume)
    resumed, resumed_rows = int(state["chunks_done"]), int(state["rows"])
    store = jobs(f"{fingerprint}:{chunk_rows}:{model.name}:{model.version}") if jobs is not None else None
    processed = 0
    for chunk in files.read_chunks(source, chunk_rows=chunk_rows, id_column=id_column):
        if chunk.index < resumed:
            if progress is not None:
                progress(chunk.n_input)
            continue
        outcome = _score_chunk(chunk, model=model, id_column=id_column, text_cells=in_fmt == "csv", store=store)
        _write_part(outcome.scores, staging / f"out-{chunk.index:06d}.{out_fmt}", out_fmt)
        _write_part(outcome.rejects, staging / f"rejects-{chunk.index:06d}.{rej_fmt}", rej_fmt)
        state["chunks_done"] = chunk.index + 1
        state["rows"] += chunk.n_input
        state["scored"] += outcome.scores.num_rows
        state["rejected"] += outcome.rejects.num_rows
        state["jobs_created"] += int(outcome.job_created)
        _write_manifest(staging, state)
        if progress is not None:
            progress(chunk.n_input)
        processed += 1
        if stop_after_chunks is not None and processed >= stop_after_chunks:
            return _summary(state, model, target, rejects, (resumed, resumed_rows), stopped=True, started=started)
    _assemble(staging, target, out_fmt, _score_schema(source, id_column), "out")
    _assemble(staging, rejects, rej_fmt, _rejects_schema(id_column), "rejects")
    shutil.rmtree(staging)
    return _summary(state, model, target, rejects, (resumed, resumed_rows), stopped=False, started=started)


@dataclass(frozen=True)
class _Outcome:
    scores: pa.Table
    rejects: pa.Table
    job_created: bool


def _score_chunk(
    chunk: Chunk, *, model: ServingModel, id_column: str | None, text_cells: bool, store: ChunkJobs | None
) -> _Outcome:
    fields = {name: array for name, array in chunk.columns.items() if name in FIELDS}  # report_id may be the id
    checked = validate(
        fields, chunk.n, text_cells=text_cells, objects=chunk.objects, preset_invalid=chunk.preset_invalid
    )
    valid = pa.array(checked.valid)
    n_valid = int(checked.valid.sum())
    predict_ms = 0.0
    scores = np.zeros(0, dtype=np.float64)
    if n_valid:
        t0 = time.perf_counter()
        scores = np.asarray(model.score(checked.columns), dtype=np.float64)
        predict_ms = (time.perf_counter() - t0) * 1000
    out: dict[str, Any] = {}
    if id_column is not None:
        out[id_column] = chunk.columns[id_column].filter(valid)
    out["row"] = pa.array(chunk.rows[checked.valid], pa.int64())
    out["score"] = pa.array(scores, pa.float64())
    out["model_version"] = pa.array([model.version] * n_valid, pa.string())
    created = False
    if store is not None and n_valid:
        ids = checked.report_ids
        if id_column is not None:
            own = chunk.columns[id_column].filter(valid).cast(pa.string()).to_pylist()
            ids = [rid if rid is not None else _usable_id(o) for rid, o in zip(ids, own, strict=True)]
        created = store.store(
            index=chunk.index, columns=checked.columns, report_ids=ids, scores=scores, predict_ms=predict_ms
        )
    return _Outcome(scores=pa.table(out), rejects=_rejects(chunk, checked.reasons, id_column), job_created=created)


def _usable_id(value: str | None) -> str | None:
    """The caller's id as a report's client id, when it fits the API's rule for one (else none is stored)."""
    return value if value is not None and 1 <= len(value) <= 128 and "\x00" not in value else None


def _rejects(chunk: Chunk, reasons: dict[int, str], id_column: str | None) -> pa.Table:
    positions = sorted(reasons)
    rows = [int(chunk.rows[i]) for i in positions] + [r for r, _ in chunk.unparsed]
    texts = [reasons[i] for i in positions] + [reason for _, reason in chunk.unparsed]
    ids: list[str | None] = []
    if id_column is not None:
        own = chunk.columns[id_column].take(pa.array(positions, pa.int64())).cast(pa.string()).to_pylist()
        ids = own + [None] * len(chunk.unparsed)
    order = sorted(range(len(rows)), key=rows.__getitem__)
    table: dict[str, pa.Array] = {"row": pa.array([rows[i] for i in order], pa.int64())}
    if id_column is not None:
        table[id_column] = pa.array([ids[i] for i in order], pa.string())
    table["reason"] = pa.array([texts[i] for i in order], pa.string())
    return pa.table(table)


def _score_schema(source: Path, id_column: str | None) -> pa.Schema:
    fields_: list[pa.Field] = []
    if id_column is not None:
        id_type = pa.string()
        if files.format_of(source) == "parquet":
            import pyarrow.parquet as pq

            id_type = pq.ParquetFile(source).schema_arrow.field(id_column).type
        fields_.append(pa.field(id_column, id_type))
    return pa.schema(
        [*fields_, pa.field("row", pa.int64()), pa.field("score", pa.float64()), pa.field("model_version", pa.string())]
    )


def _rejects_schema(id_column: str | None) -> pa.Schema:
    id_field = [pa.field(id_column, pa.string())] if id_column is not None else []
    return pa.schema([pa.field("row", pa.int64()), *id_field, pa.field("reason", pa.string())])


def _start(staging: Path, run: dict[str, Any], *, resume: bool) -> dict[str, Any]:
    """The run's state: a stopped run's when resuming it, else a fresh staging directory."""
    manifest = staging / MANIFEST
    if resume and manifest.is_file():
        state: dict[str, Any] = json.loads(manifest.read_text())
        if state.get("run") != run:
            raise ResumeError(
                f"the stopped run in {staging.name} differs from this one (input file, model or options changed): "
                "run without --resume to start over"
            )
        for stale in staging.glob("*.tmp"):
            stale.unlink()
        return state
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    state = {"run": run, "chunks_done": 0, "rows": 0, "scored": 0, "rejected": 0, "jobs_created": 0}
    _write_manifest(staging, state)
    return state


def _write_manifest(staging: Path, state: dict[str, Any]) -> None:
    tmp = staging / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, staging / MANIFEST)


def _write_part(table: pa.Table, path: Path, fmt: Format) -> None:
    """Write a part under a temporary name, then rename it: a part that exists is complete."""
    tmp = path.with_name(path.name + ".tmp")
    files.write_part(table, tmp, fmt)
    os.replace(tmp, path)


def _assemble(staging: Path, target: Path, fmt: Format, schema: pa.Schema, prefix: str) -> None:
    parts = sorted(staging.glob(f"{prefix}-*.{fmt}"))
    tmp = target.with_name(f".{target.name}.tmp")
    files.assemble(parts, schema, tmp, fmt)
    os.replace(tmp, target)


def _summary(
    state: dict[str, Any],
    model: ServingModel,
    target: Path,
    rejects: Path,
    resumed: tuple[int, int],
    *,
    stopped: bool,
    started: float,
) -> Summary:
    return Summary(
        rows=int(state["rows"]),
        scored=int(state["scored"]),
        rejected=int(state["rejected"]),
        chunks=int(state["chunks_done"]),
        resumed_chunks=resumed[0],
        resumed_rows=resumed[1],
        model_version=model.version,
        output=target,
        rejects=rejects,
        jobs_created=int(state["jobs_created"]),
        stopped=stopped,
        elapsed_s=time.perf_counter() - started,
    )
