"""Where exported files go: a local directory or an ``s3://bucket/prefix``, through pyarrow's filesystems; and a
writer per file format.

A file is written under a hidden in-progress name in its partition directory, made durable (fsync on a local
disk; the completed upload on S3), then moved to its final name, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pyarrow import fs

FORMATS = ("parquet", "csv", "jsonl")


class ExportTargetError(Exception):
    """The target cannot be used (a bad URL, an unreachable store, no permission)."""


class Target:
    """A base directory on a filesystem: a local path or ``s3://bucket/prefix``."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None) -> None:
        self.url = url
        parsed = urlparse(url)
        if parsed.scheme == "s3":
            if not parsed.hostname:
                raise ExportTargetError(f"export target {url!r}: expected s3://bucket/prefix")
            options: dict[str, Any] = {"region": region} if region else {}
            if endpoint_url:
                endpoint = urlparse(endpoint_url)
                options["scheme"] = endpoint.scheme or "https"
                options["endpoint_override"] = endpoint.netloc or endpoint.path
            self.filesystem: fs.FileSystem = fs.S3FileSystem(**options)
            self.base = "/".join(p for p in (parsed.hostname, parsed.path.strip("/")) if p)
            self.is_local = False
        elif parsed.scheme in ("", "file"):
            path = Path(parsed.path if parsed.scheme == "file" else url).expanduser().resolve()
            self.filesystem = fs.LocalFileSystem()
            self.base = str(path)
            self.is_local = True
        else:
            raise ExportTargetError(f"export target {url!r}: expected a local path or s3://bucket/prefix")

    def path(self, relative: str) -> str:
        return f"{self.base}/{relative}"

    def publish(self, temporary: str, final: str) -> None:
        """Make ``temporary`` durable and move it to ``final``."""
        if self.is_local:
            _fsync(temporary)
            self.filesystem.move(temporary, final)
            _fsync(str(Path(final).parent))
        else:
            # S3 has no rename: a copy within the bucket, then the in-progress object is deleted.
            self.filesystem.move(temporary, final)

    def discard(self, temporary: str) -> None:
        with contextlib.suppress(OSError):
            self.filesystem.delete_file(temporary)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FormatWriter(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...
    def close(self) -> None: ...


class _ParquetWriter:
    def __init__(self, stream: pa.NativeFile, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(stream, schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


class _CsvWriter:
    def __init__(self, stream: pa.NativeFile, schema: pa.Schema) -> None:
        self._writer = pa_csv.CSVWriter(stream, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class _JsonLinesWriter:
    """One JSON object per line; timestamps as ISO 8601 in UTC (``Z``)."""

    def __init__(self, stream: pa.NativeFile, schema: pa.Schema) -> None:
        self._stream = stream

    def write(self, batch: pa.RecordBatch) -> None:
        lines = [json.dumps(row, default=_json_value, separators=(",", ":")) for row in batch.to_pylist()]
        if lines:
            self._stream.write(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        pass


_WRITERS: dict[str, type[_ParquetWriter] | type[_CsvWriter] | type[_JsonLinesWriter]] = {
    "parquet": _ParquetWriter,
    "csv": _CsvWriter,
    "jsonl": _JsonLinesWriter,
}


class PartFile:
    """One exported file, written under an in-progress name and published by :meth:`commit`."""

    def __init__(self, target: Target, relative: str, *, fmt: str, schema: pa.Schema) -> None:
        directory, _, name = relative.rpartition("/")
        self.target = target
        self.final = target.path(relative)
        hidden = f".{name}.{uuid.uuid4().hex[:8]}.inprogress"  # two writers of one name never share a file
        self.temporary = target.path(f"{directory}/{hidden}" if directory else hidden)
        self.relative = relative
        self.rows = 0
        if target.is_local:
            target.filesystem.create_dir(self.final.rpartition("/")[0], recursive=True)
        self._stream = target.filesystem.open_output_stream(self.temporary)
        self._writer: FormatWriter = _WRITERS[fmt](self._stream, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write(batch)
        self.rows += batch.num_rows

    def commit(self) -> None:
        self._writer.close()
        self._stream.close()
        self.target.publish(self.temporary, self.final)

    def abort(self) -> None:
        try:
            self._stream.close()
        finally:
            self.target.discard(self.temporary)
