"""Shadow challengers: the shadow set, the scores shadows gave, and the paired rows a comparison reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, insert, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reportscore.storage.models import ModelShadow, Report, ReportScore, ShadowScore


@dataclass(frozen=True)
class Shadow:
    name: str
    version: str
    fraction: float
    started_at: datetime
    started_by: str


def list_shadows(session: Session, *, name: str) -> list[Shadow]:
    rows = session.scalars(select(ModelShadow).where(ModelShadow.name == name).order_by(ModelShadow.started_at))
    return [Shadow(r.name, r.version, r.fraction, r.started_at, r.started_by) for r in rows]


def upsert_shadow(session: Session, *, name: str, version: str, fraction: float, at: datetime, by: str) -> None:
    """Start shadowing ``version`` (or change its fraction when it is already a shadow)."""
    row = session.get(ModelShadow, (name, version), with_for_update=True)
    if row is None:
        session.add(ModelShadow(name=name, version=version, fraction=fraction, started_at=at, started_by=by))
    else:
        row.fraction = fraction
    session.flush()


def delete_shadow(session: Session, *, name: str, version: str) -> bool:
    """Stop shadowing ``version``; False when it was not a shadow. Its stored scores stay for comparisons."""
    result: Any = session.execute(delete(ModelShadow).where(ModelShadow.name == name, ModelShadow.version == version))
    return bool(result.rowcount)


def save_scores(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Store shadow scores (report_id, model_version, score, scored_at); a report a shadow already scored (a job
    scored twice after a lost lease) keeps its first score."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt: Any
    keys = ["report_id", "model_version"]
    if dialect == "postgresql":
        stmt = postgresql.insert(ShadowScore).on_conflict_do_nothing(index_elements=keys)
    elif dialect == "sqlite":
        stmt = sqlite.insert(ShadowScore).on_conflict_do_nothing(index_elements=keys)
    else:
        stmt = insert(ShadowScore)
    session.execute(stmt, list(rows))


@dataclass(frozen=True)
class PairedPage:
    """Reports scored by both versions, in report id order: scores side by side and the moderator outcome
    (1 actioned, 0 dismissed, None not reviewed)."""

    report_ids: list[int]
    champion: list[float]
    challenger: list[float]
    outcomes: list[int | None]


def _scores_of(version: str, since: datetime | None, until: datetime | None) -> Any:
    """A version's score of each report, whether it answered as the champion or ran as a shadow."""
    served: Select[int, float] = select(ReportScore.report_id.label("report_id"), ReportScore.score.label("score"))
    served = served.where(ReportScore.model_version == version)
    shadowed: Select[int, float] = select(ShadowScore.report_id.label("report_id"), ShadowScore.score.label("score"))
    shadowed = shadowed.where(ShadowScore.model_version == literal(version))
    if since is not None:
        served = served.where(ReportScore.scored_at >= since)
        shadowed = shadowed.where(ShadowScore.scored_at >= since)
    if until is not None:
        served = served.where(ReportScore.scored_at < until)
        shadowed = shadowed.where(ShadowScore.scored_at < until)
    return union_all(served, shadowed).subquery()


def paired_page(
    session: Session,
    *,
    champion: str,
    challenger: str,
    since: datetime | None,
    until: datetime | None,
    abuse_type: str | None,
    after_report_id: int,
    limit: int,
) -> PairedPage:
    """One page (keyset on report id) of the reports both versions scored in ``[since, until)``."""
    a = _scores_of(champion, since, until)
    b = _scores_of(challenger, since, until)
    stmt = (
        select(Report.id, a.c.score, b.c.score, Report.review_outcome)
        .join(a, a.c.report_id == Report.id)
        .join(b, b.c.report_id == Report.id)
        .where(Report.id > after_report_id)
        .order_by(Report.id)
        .limit(limit)
    )
    if abuse_type is not None:
        stmt = stmt.where(Report.abuse_type == abuse_type)
    rows = session.execute(stmt).all()
    label = {"actioned": 1, "dismissed": 0}
    return PairedPage(
        report_ids=[r[0] for r in rows],
        champion=[float(r[1]) for r in rows],
        challenger=[float(r[2]) for r in rows],
        outcomes=[label.get(r[3]) if r[3] is not None else None for r in rows],
    )
