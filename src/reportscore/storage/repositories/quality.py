"""Online quality aggregates: all their SQL.

An outcome is credited to every version that scored the report (:func:`report_scorings`), as a change of counts in
``quality_bins`` (and, for a report's first outcome, ``quality_label_delays``) inside the transaction that records
the outcome. A correction moves the report from one label to the other; a repeated outcome changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reportscore.storage.models import Job, QualityBin, QualityLabelDelay, Report, ReportScore, ShadowScore

SCORE_BINS = 1000
"""Fine score bins of width 1/SCORE_BINS: metrics are exact for scores rounded to this resolution."""
WINDOW_S = 3600
"""Aggregates are kept per hour of scoring (UTC); a query's window is a multiple of it."""
LABEL_DELAY_BOUNDS_S = (60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)
"""Upper bounds of the label-delay histogram (1 min … 30 days); one more bucket counts longer delays."""
POSITIVE = "actioned"
NEGATIVE = "dismissed"


@dataclass(frozen=True)
class Scoring:
    """One version's score of a report: what an outcome of that report is credited to."""

    model_name: str
    model_version: str
    score: float
    scored_at: datetime


def score_bin(score: float) -> int:
    return min(max(math.floor(score * SCORE_BINS), 0), SCORE_BINS - 1)


def window_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at - timedelta(minutes=at.minute, seconds=at.second, microseconds=at.microsecond)


def delay_bucket(delay_s: float) -> int:
    for i, bound in enumerate(LABEL_DELAY_BOUNDS_S):
        if delay_s <= bound:
            return i
    return len(LABEL_DELAY_BOUNDS_S)


def report_scorings(session: Session, *, report_id: int) -> list[Scoring]:
    """Every version that scored the report: the one that answered (``report_scores``) and each shadow version
    (``shadow_scores``), all under the job's model name, so a shadow's outcomes are counted the same way."""
    scored = [
        select(Job.model_name, table.model_version, table.score, table.scored_at, Job.created_at)
        .join(Report, Report.id == table.report_id)
        .join(Job, Job.id == Report.job_id)
        .where(table.report_id == report_id)
        for table in (ReportScore, ShadowScore)
    ]
    rows = session.execute(union_all(*scored)).all()
    return [
        Scoring(model_name=r[0] or "", model_version=r[1], score=float(r[2]), scored_at=r[3] or r[4])
        for r in rows
        if r[1] is not None
    ]


def _upsert(session: Session, table: Any, keys: Sequence[str], row: dict[str, Any]) -> None:
    """Insert ``row`` or add its non-key values to the existing row's."""
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - the two supported stores
        raise NotImplementedError(dialect)
    stmt = stmt.values(**row)
    adds = {c: getattr(table, c) + getattr(stmt.excluded, c) for c in row if c not in keys}
    session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=adds))


_BIN_KEYS = ("model_name", "model_version", "window_start", "bin")
_DELAY_KEYS = ("model_name", "model_version", "window_start", "bucket")


def apply_outcome(
    session: Session, *, report_id: int, previous: str | None, outcome: str, reviewed_at: datetime
) -> int:
    """Count a report's new current outcome (``previous`` is the one it replaces, None for a first review) for every
    version that scored it; returns how many versions were credited."""
    if previous == outcome:
        return 0
    scorings = report_scorings(session, report_id=report_id)
    for s in scorings:
        start = window_start(s.scored_at)
        pos = (outcome == POSITIVE) - (previous == POSITIVE)
        neg = (outcome == NEGATIVE) - (previous == NEGATIVE)
        first = previous is None
        _upsert(
            session,
            QualityBin,
            _BIN_KEYS,
            {
                "model_name": s.model_name,
                "model_version": s.model_version,
                "window_start": start,
                "bin": score_bin(s.score),
                "positives": pos,
                "negatives": neg,
                "score_sum": s.score if first else 0.0,
                "score_sq_sum": s.score * s.score if first else 0.0,
                "positive_score_sum": pos * s.score,
            },
        )
        if first:
            delay_s = max((reviewed_at - s.scored_at).total_seconds(), 0.0)
            _upsert(
                session,
                QualityLabelDelay,
                _DELAY_KEYS,
                {
                    "model_name": s.model_name,
                    "model_version": s.model_version,
                    "window_start": start,
                    "bucket": delay_bucket(delay_s),
                    "reports": 1,
                },
            )
    return len(scorings)


@dataclass(frozen=True)
class BinRow:
    window_start: datetime
    bin: int
    positives: int
    negatives: int
    score_sum: float
    score_sq_sum: float
    positive_score_sum: float


def read_bins(
    session: Session,
    *,
    model_name: str,
    model_version: str,
    since: datetime | None,
    until: datetime | None,
    hourly: bool = True,
) -> list[BinRow]:
    """The non-empty bins of a version for the hours in ``[since, until)`` (hours that start in it): one row per
    hour and bin, or (``hourly=False``) summed over the hours: one row per bin, its first hour as ``window_start``."""
    q = QualityBin
    columns = (q.positives, q.negatives, q.score_sum, q.score_sq_sum, q.positive_score_sum)
    selected: list[Any] = (
        [q.window_start, q.bin, *columns]
        if hourly
        else [func.min(q.window_start), q.bin, *(func.sum(c) for c in columns)]
    )
    query = select(*selected)
    if not hourly:
        query = query.group_by(q.bin)
    query = query.where(QualityBin.model_name == model_name, QualityBin.model_version == model_version)
    if since is not None:
        query = query.where(QualityBin.window_start >= since)
    if until is not None:
        query = query.where(QualityBin.window_start < until)
    rows = session.execute(query.where((QualityBin.positives + QualityBin.negatives) > 0)).all()
    return [BinRow(r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4]), float(r[5]), float(r[6])) for r in rows]


def read_delays(
    session: Session, *, model_name: str, model_version: str, since: datetime | None, until: datetime | None
) -> list[tuple[datetime, int, int]]:
    """(hour, bucket, reports) of a version's label-delay histogram for the hours in ``[since, until)``."""
    query = select(QualityLabelDelay.window_start, QualityLabelDelay.bucket, QualityLabelDelay.reports).where(
        QualityLabelDelay.model_name == model_name, QualityLabelDelay.model_version == model_version
    )
    if since is not None:
        query = query.where(QualityLabelDelay.window_start >= since)
    if until is not None:
        query = query.where(QualityLabelDelay.window_start < until)
    return [(r[0], int(r[1]), int(r[2])) for r in session.execute(query).all()]


def versions_with_outcomes(
    session: Session, *, model_name: str, since: datetime | None, until: datetime | None
) -> list[str]:
    """The versions of ``model_name`` with labelled reports scored in ``[since, until)``."""
    query = select(QualityBin.model_version).distinct().where(QualityBin.model_name == model_name)
    if since is not None:
        query = query.where(QualityBin.window_start >= since)
    if until is not None:
        query = query.where(QualityBin.window_start < until)
    return sorted(session.scalars(query))
