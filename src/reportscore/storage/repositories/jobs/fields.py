"""A report's submitted fields, declared once; the insert and select SQL of both databases is built from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

REPORT_FIELDS: tuple[tuple[str, str], ...] = (
    ("abuse_type", "varchar"),
    ("report_text_len", "integer"),
    ("profile_rating", "float8"),
    ("popularity", "smallint"),
    ("lifetime_matches_created", "integer"),
)
"""Each submitted feature column with its PostgreSQL type (for ``json_to_recordset``)."""

REPORT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in REPORT_FIELDS)

INSERT_COLUMNS: tuple[str, ...] = ("job_id", "owner", "position", "client_report_id", *REPORT_COLUMNS)
"""A report row as it is inserted, in this order."""

INSERT_COLUMNS_SQL = ", ".join(INSERT_COLUMNS)
SELECT_COLUMNS: tuple[str, ...] = ("job_id", "id", "client_report_id", *REPORT_COLUMNS)
"""What ``load_features`` reads back: job, report id, client id, then the features."""

PG_RECORD_TYPES_SQL = ", ".join(
    (
        "job_id varchar",
        "owner varchar",
        "position integer",
        "client_report_id varchar",
        *(f"{name} {pg_type}" for name, pg_type in REPORT_FIELDS),
    )
)
"""The ``AS v(...)`` column list of ``json_to_recordset`` over rows of ``INSERT_COLUMNS``."""

SCORE_COLUMNS_SQL = "report_id, owner, score, model_version, scored_at"
"""A ``report_scores`` row as it is inserted."""

DRIFT_UPSERT_SQL = (
    "INSERT INTO drift_counts (model_version, window_start, feature, bin, count) VALUES ({values}) "
    "ON CONFLICT (model_version, window_start, feature, bin) DO UPDATE SET count = drift_counts.count + excluded.count"
)
"""The drift bins' UPSERT (SQLite 3.24+ and PostgreSQL), its ``{values}`` in the driver's parameter style."""


_features_of = itemgetter(*REPORT_COLUMNS)


def report_rows(job_id: str, owner: str, reports: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """A job's reports as the values of ``INSERT_COLUMNS``, in report order (the position is the index)."""
    return [(job_id, owner, i, report.get("report_id"), *_features_of(report)) for i, report in enumerate(reports)]


def sqlite_timestamp(value: datetime | None) -> str | None:
    """An aware datetime as SQLAlchemy's SQLite ``DateTime`` stores it (``UTCDateTime`` reads it back as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True)
class FeatureRows:
    """Reports of several jobs, columnar, ordered by (job, position)."""

    job_ids: list[str]
    report_ids: list[int]
    columns: dict[str, list[Any]]
    client_report_ids: list[str | None] = field(default_factory=list)


def feature_rows(job_id: str, report_ids: Sequence[int], reports: Sequence[Mapping[str, Any]]) -> FeatureRows:
    """One job's reports as they were submitted, in the shape ``load_features`` reads them back."""
    return FeatureRows(
        job_ids=[job_id] * len(reports),
        report_ids=list(report_ids),
        columns={name: [r[name] for r in reports] for name in REPORT_COLUMNS},
        client_report_ids=[r.get("report_id") for r in reports],
    )
