"""The review queue (keyset-paginated, highest score first) and moderators' outcomes."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from reportscore.moderation.reasons import ReasonExplainer
from reportscore.storage.db import Database
from reportscore.storage.repositories import moderation as moderation_repo
from reportscore.storage.repositories.moderation import ReviewRow

Outcome = Literal["actioned", "dismissed"]
FeedbackStatus = Literal["recorded", "unchanged", "not_found"]
CURSOR_VERSION = 1


class InvalidCursor(ValueError):
    """A cursor that this service did not hand out (or one for another filter)."""


def encode_cursor(*, score: float, report_id: int, abuse_type: str | None) -> str:
    """An opaque cursor holding the last (score, id) of a page and the filter it belongs to."""
    raw = orjson.dumps({"v": CURSOR_VERSION, "s": score, "i": report_id, "a": abuse_type})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, abuse_type: str | None) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = orjson.loads(raw)
        if not isinstance(doc, dict) or doc.get("v") != CURSOR_VERSION:
            raise ValueError("unknown cursor version")
        score, report_id = doc["s"], doc["i"]
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise ValueError("bad score")
        if isinstance(report_id, bool) or not isinstance(report_id, int) or not 0 <= report_id < 2**63:
            raise ValueError("bad id")
    except (binascii.Error, ValueError, KeyError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor("invalid cursor: pass back the next_cursor of a previous page unchanged") from exc
    if doc.get("a") != abuse_type:
        raise InvalidCursor(
            f"this cursor belongs to a queue filtered by abuse_type={doc.get('a')!r}, not {abuse_type!r}: "
            "keep the same filter while paging"
        )
    return float(score), report_id


@dataclass(frozen=True)
class QueuePage:
    items: list[ReviewRow]
    reasons: dict[int, list[dict[str, Any]] | None]
    next_cursor: str | None


def with_reasons(*, db: Database, explainer: ReasonExplainer, rows: Sequence[ReviewRow]) -> dict[int, Any]:
    """Reasons for ``rows``, computing and storing the ones not stored yet."""
    explained = explainer.explain(rows)
    if explained.to_store:
        with db.write() as session:
            moderation_repo.save_reasons(session, explained.to_store)
    return explained.reasons


def queue_page(
    *,
    db: Database,
    explainer: ReasonExplainer,
    owner: str,
    limit: int,
    abuse_type: str | None = None,
    cursor: str | None = None,
) -> QueuePage:
    """One page of ``owner``'s unreviewed, scored reports, highest score first (ties: lowest id first).

    Raises :class:`InvalidCursor` for a cursor this service did not hand out. Keyset pagination: reports inserted
    while paging never shift the pages (higher-scored ones appear on a new first page, lower ones further on).
    """
    after = decode_cursor(cursor, abuse_type=abuse_type) if cursor is not None else None
    with db.read() as session:
        rows = moderation_repo.queue_page(session, owner=owner, limit=limit + 1, abuse_type=abuse_type, after=after)
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = (
        encode_cursor(score=rows[-1].score, report_id=rows[-1].id, abuse_type=abuse_type) if more and rows else None
    )
    reasons = with_reasons(db=db, explainer=explainer, rows=rows)
    return QueuePage(items=rows, reasons=reasons, next_cursor=next_cursor)


def task_reasons(*, db: Database, explainer: ReasonExplainer, task_id: str) -> dict[int, Any]:
    """Reasons of a finished job's reports by report id (the caller has checked the job is the tenant's)."""
    with db.read() as session:
        rows = moderation_repo.job_review_rows(session, job_id=task_id)
    return with_reasons(db=db, explainer=explainer, rows=rows)


@dataclass(frozen=True)
class FeedbackItem:
    outcome: Outcome
    reviewer: str
    reviewed_at: datetime | None = None
    id: int | None = None
    report_id: str | None = None


@dataclass(frozen=True)
class FeedbackResult:
    status: FeedbackStatus
    id: int | None
    report_id: str | None
    outcome: Outcome
    previous_outcome: str | None = None


def record_feedback(*, db: Database, owner: str, items: Sequence[FeedbackItem]) -> list[FeedbackResult]:
    """Record outcomes in one transaction; one result per item, in order.

    - ``recorded``: the outcome is now the report's (a first review, or a correction of a different earlier outcome:
      the latest wins, ``previous_outcome`` names what it replaced, and the history keeps both);
    - ``unchanged``: the report's current outcome already is this one (a retried request changes nothing);
    - ``not_found``: no report with that id in the caller's tenant.
    """
    recorded_at = datetime.now(UTC)
    results: list[FeedbackResult] = []
    with db.write() as session:
        for item in items:
            target = moderation_repo.feedback_target(
                session, owner=owner, report_id=item.id, client_report_id=item.report_id
            )
            if target is None:
                results.append(FeedbackResult("not_found", item.id, item.report_id, item.outcome))
                continue
            if target.review_outcome == item.outcome:
                results.append(FeedbackResult("unchanged", target.id, target.client_report_id, item.outcome))
                continue
            moderation_repo.record_outcome(
                session,
                target=target,
                owner=owner,
                outcome=item.outcome,
                reviewer=item.reviewer,
                reviewed_at=item.reviewed_at or recorded_at,
                recorded_at=recorded_at,
            )
            results.append(
                FeedbackResult(
                    "recorded", target.id, target.client_report_id, item.outcome, previous_outcome=target.review_outcome
                )
            )
    return results
