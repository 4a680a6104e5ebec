"""The exported table's typed schema, and a page of report rows turned into an Arrow record batch."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from reportscore.storage.repositories.exports import EXPORT_COLUMNS

_TIMESTAMP = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema(
    [
        pa.field("report_id", pa.int64(), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("owner", pa.string(), nullable=False),
        pa.field("created_at", _TIMESTAMP, nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("client_report_id", pa.string()),
        pa.field("abuse_type", pa.string(), nullable=False),
        pa.field("report_text_len", pa.int32(), nullable=False),
        pa.field("profile_rating", pa.float64(), nullable=False),
        pa.field("popularity", pa.int8(), nullable=False),
        pa.field("lifetime_matches_created", pa.int32(), nullable=False),
        pa.field("job_status", pa.string(), nullable=False),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("scored_at", _TIMESTAMP),
        pa.field("review_outcome", pa.string()),
        pa.field("reviewed_at", _TIMESTAMP),
        pa.field("reasons", pa.string()),
    ]
)
"""One row per report. ``created_at`` is when its job was accepted (the partition's day); ``reasons`` is the stored
JSON list of top feature contributions, or null when none were computed."""

assert tuple(SCHEMA.names) == EXPORT_COLUMNS, "the schema and the repository's columns must agree"

_JOB_STATUS = EXPORT_COLUMNS.index("job_status")


def to_batch(rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """A record batch of ``rows`` (in :data:`EXPORT_COLUMNS` order) with the explicit :data:`SCHEMA` types."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in SCHEMA]
    arrays = []
    for index, (field, values) in enumerate(zip(SCHEMA, columns, strict=True)):
        if index == _JOB_STATUS:
            values = tuple(v.value if isinstance(v, enum.Enum) else v for v in values)
        arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)
