"""Chunked readers and writers of CSV, Parquet and JSON Lines files (pyarrow), in constant memory.

A reader yields ``Chunk``s of a fixed number of input rows, numbered 1.. in input order (CSV: data rows after the
header; Parquet: rows; JSON Lines: lines, blank lines skipped). The same file and chunk size always give the same
chunks, which is what lets a stopped run resume after its last complete chunk.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from reportscore.bulk.validation import FIELDS

Format = Literal["csv", "parquet", "jsonl"]
SUFFIXES: Final[dict[str, Format]] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
CSV_BLOCK_BYTES = 1 << 20


class FileFormatError(ValueError):
    """The file's format is unknown, or its columns cannot be reports (nothing was written)."""


def format_of(path: Path) -> Format:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(SUFFIXES))
        raise FileFormatError(f"{path.name}: unknown file format {path.suffix or '(no suffix)'!r}; known: {known}")
    return fmt


@dataclass
class Chunk:
    """Up to ``chunk_rows`` consecutive input rows."""

    index: int
    columns: dict[str, pa.Array]
    """The rows that could be parsed: one array per report field present, plus the id column (as read)."""
    rows: npt.NDArray[np.int64]
    """The input row number of each parsed row."""
    objects: list[Any] | None = None
    """JSON Lines: each parsed row's decoded JSON value (the reason text comes from validating these)."""
    preset_invalid: npt.NDArray[np.bool_] | None = None
    """JSON Lines: rows known to be invalid before validation (not an object, an unknown key, a mixed-type value)."""
    unparsed: list[tuple[int, str]] = field(default_factory=list)
    """(row number, reason) of rows that could not be parsed at all (a CSV row with the wrong number of cells,
    a JSON Lines line that is not JSON)."""

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def n_input(self) -> int:
        return len(self.rows) + len(self.unparsed)


def read_chunks(path: Path, *, chunk_rows: int, id_column: str | None) -> Iterator[Chunk]:
    """The file's rows in chunks of ``chunk_rows`` input rows (the last may be shorter)."""
    fmt = format_of(path)
    if fmt == "jsonl":
        yield from _jsonl_chunks(path, chunk_rows=chunk_rows, id_column=id_column)
        return
    wanted = _check_columns(path, _column_names(path, fmt), id_column)
    pieces = _csv_pieces(path, wanted) if fmt == "csv" else _parquet_pieces(path, wanted, chunk_rows)
    yield from _rechunk(pieces, chunk_rows)


def check_columns(path: Path, *, id_column: str | None) -> None:
    """Refuse a CSV or Parquet file whose columns cannot be reports (JSON Lines rows are checked one by one)."""
    fmt = format_of(path)
    if fmt != "jsonl":
        _check_columns(path, _column_names(path, fmt), id_column)


def count_rows(path: Path) -> int | None:
    """Rows in the file when its metadata says so without reading it (Parquet), else None."""
    if format_of(path) == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    return None


def _column_names(path: Path, fmt: Format) -> list[str]:
    if fmt == "parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    with path.open(newline="", encoding="utf-8-sig") as fh:  # a byte-order mark is not part of a name
        return next(csv.reader(fh), [])


def _check_columns(path: Path, names: list[str], id_column: str | None) -> list[str]:
    """The columns to read; a file whose columns cannot be reports is refused before anything is written."""
    missing = [f for f in FIELDS[:-1] if f not in names]
    if missing:
        raise FileFormatError(
            f"{path.name}: missing column(s) {', '.join(missing)} (a report needs {', '.join(FIELDS[:-1])})"
        )
    if id_column is not None and id_column not in names:
        raise FileFormatError(f"{path.name}: no column {id_column!r} for --id-column")
    unknown = [c for c in names if c not in FIELDS and c != id_column]
    if unknown:
        raise FileFormatError(
            f"{path.name}: unknown column(s) {', '.join(unknown)}: a report has only {', '.join(FIELDS)} "
            "(the API refuses unknown fields too); carry your own id with --id-column"
        )
    return list(dict.fromkeys([*(f for f in FIELDS if f in names), *([id_column] if id_column else [])]))


Piece = tuple[dict[str, pa.Array], npt.NDArray[np.int64], list[tuple[int, str]]]


def _csv_pieces(path: Path, wanted: list[str]) -> Iterator[Piece]:
    bad: list[tuple[int, str]] = []

    def invalid_row(row: Any) -> str:
        bad.append(
            (int(row.number) - 1, f"malformed CSV row: {row.actual_columns} cells, expected {row.expected_columns}")
        )
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(invalid_row_handler=invalid_row),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in wanted},
            include_columns=wanted,
            null_values=[""],  # only an empty cell is absent: "NA" or "NaN" is text, as in a JSON body
            strings_can_be_null=True,
        ),
    )
    next_row = 1
    for batch in reader:
        taken = {r for r, _ in bad}
        if not taken:
            rows = np.arange(next_row, next_row + batch.num_rows, dtype=np.int64)
            next_row += batch.num_rows
        else:  # the skipped rows keep their numbers: number the parsed ones around them
            numbers: list[int] = []
            while len(numbers) < batch.num_rows:
                if next_row not in taken:
                    numbers.append(next_row)
                next_row += 1
            rows = np.asarray(numbers, dtype=np.int64)
        unparsed, bad[:] = list(bad), []
        yield {name: batch.column(name) for name in wanted}, rows, unparsed
    if bad:
        yield {name: pa.array([], pa.string()) for name in wanted}, np.zeros(0, dtype=np.int64), list(bad)


def _parquet_pieces(path: Path, wanted: list[str], chunk_rows: int) -> Iterator[Piece]:
    start = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=wanted):
        yield {name: batch.column(name) for name in wanted}, np.arange(start, start + batch.num_rows), []
        start += batch.num_rows


def _rechunk(pieces: Iterator[Piece], chunk_rows: int) -> Iterator[Chunk]:
    """Regroup pieces into chunks of ``chunk_rows`` consecutive row numbers (parsed or not)."""
    buffered: list[Piece] = []
    index = 0

    def take(bound: int | None) -> Chunk:
        names = list(buffered[0][0])
        parts_rows = [p[1] for p in buffered]
        rows = np.concatenate(parts_rows) if parts_rows else np.zeros(0, dtype=np.int64)
        columns = {name: pa.concat_arrays([_array(p[0][name]) for p in buffered]) for name in names}
        unparsed = sorted(u for p in buffered for u in p[2])
        keep = np.ones(len(rows), dtype=np.bool_) if bound is None else rows <= bound
        head = Chunk(
            index=index,
            columns={k: v.filter(pa.array(keep)) for k, v in columns.items()},
            rows=rows[keep],
            unparsed=[u for u in unparsed if bound is None or u[0] <= bound],
        )
        buffered.clear()
        rest_unparsed = [u for u in unparsed if bound is not None and u[0] > bound]
        if not keep.all() or rest_unparsed:
            buffered.append(({k: v.filter(pa.array(~keep)) for k, v in columns.items()}, rows[~keep], rest_unparsed))
        return head

    for piece in pieces:
        buffered.append(piece)
        while True:
            bound = (index + 1) * chunk_rows
            highest = max(
                [int(p[1][-1]) for p in buffered if len(p[1])] + [u[0] for p in buffered for u in p[2]], default=0
            )
            if highest <= bound:
                break
            yield take(bound)
            index += 1
    if buffered and any(len(p[1]) or p[2] for p in buffered):
        yield take(None)


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    return column


def _jsonl_chunks(path: Path, *, chunk_rows: int, id_column: str | None) -> Iterator[Chunk]:
    index = 0
    lines: list[tuple[int, bytes]] = []
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                lines.append((number, line))
            if number % chunk_rows == 0 and lines:
                yield _jsonl_chunk(index, lines, id_column)
                index, lines = index + 1, []
            elif number % chunk_rows == 0:
                index += 1
    if lines:
        yield _jsonl_chunk(index, lines, id_column)


_SCALAR_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "abuse_type": (str,),
    "report_text_len": (int, float),
    "profile_rating": (int, float),
    "popularity": (int, float),
    "lifetime_matches_created": (int, float),
    "report_id": (str,),
}


def _jsonl_chunk(index: int, lines: Sequence[tuple[int, bytes]], id_column: str | None) -> Chunk:
    unparsed: list[tuple[int, str]] = []
    rows: list[int] = []
    objects: list[Any] = []
    for number, line in lines:
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            unparsed.append((number, f"not valid JSON: {exc}"))
            continue
        rows.append(number)
        objects.append(value)
    allowed = set(FIELDS) | ({id_column} if id_column else set())
    invalid = np.zeros(len(objects), dtype=np.bool_)
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict) or not obj.keys() <= allowed:
            invalid[i] = True
    dicts = [obj if isinstance(obj, dict) else {} for obj in objects]
    columns: dict[str, pa.Array] = {}
    for name, types in _SCALAR_TYPES.items():
        values = [d.get(name) for d in dicts]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            clean = []
            for i, v in enumerate(values):  # a mixed column: keep the values of the field's types, the rest fail
                if v is None or (type(v) in types and not (type(v) is int and abs(v) > 2**53)):
                    clean.append(v)
                else:
                    clean.append(None)
                    invalid[i] = True
            columns[name] = pa.array(clean)
    if id_column is not None and id_column not in FIELDS:
        ids = [d.get(id_column) for d in dicts]
        columns[id_column] = pa.array(
            [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in ids], pa.string()
        )
    own = id_column if id_column not in FIELDS else None  # the caller's column is not a field (unless report_id)
    checked = [({k: v for k, v in d.items() if k != own} if isinstance(d, dict) else d) for d in objects]
    return Chunk(
        index=index,
        columns=columns,
        rows=np.asarray(rows, dtype=np.int64),
        objects=checked,
        preset_invalid=invalid,
        unparsed=unparsed,
    )


# --- writers ---------------------------------------------------------------------------------------------------


def write_part(table: pa.Table, path: Path, fmt: Format) -> None:
    """Write one chunk's table to ``path`` (CSV without a header: the header is written once when assembling)."""
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(include_header=False))
    else:
        with path.open("wb") as fh:
            for row in table.to_pylist():
                fh.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))


def assemble(parts: Sequence[Path], schema: pa.Schema, target: Path, fmt: Format) -> None:
    """Concatenate the parts into ``target`` one part at a time (constant memory)."""
    if fmt == "parquet":
        with pq.ParquetWriter(target, schema) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part).cast(schema))
        return
    with target.open("wb") as out:
        if fmt == "csv":
            header = pa.BufferOutputStream()
            pacsv.write_csv(schema.empty_table(), header)
            out.write(header.getvalue().to_pybytes())
        for part in parts:
            with part.open("rb") as fh:
                while block := fh.read(1 << 20):
                    out.write(block)
