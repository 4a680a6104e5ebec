"""The review queue (keyset-paginated, highest score first) and moderators' outcomes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from reportscore.moderation.reasons import ReasonExplainer
from reportscore.storage.db import Database
from reportscore.storage.repositories import moderation as moderation_repo
from reportscore.storage.repositories import quality as quality_repo
from reportscore.storage.repositories.moderation import ReviewRow

Outcome = Literal["actioned", "dismissed"]
FeedbackStatus = Literal["recorded", "unchanged", "not_found"]
CURSOR_PATTERN = r"^-?[0-9]{1,20}(\.[0-9]{1,20})?(e[-+]?[0-9]{1,3})?_[1-9][0-9]{0,17}$"
"""A queue position ``<score>_<id>``: the last item's score (Python's ``repr`` of a float, which always matches)
and its id. Every matching string is a valid position: ``float()`` parses the score (at worst to ±inf, still an
order) and the id is a positive integer below 10**18, inside BIGINT."""

_CURSOR = re.compile(CURSOR_PATTERN)


class InvalidCursor(ValueError):
    """A cursor not of the form ``<score>_<id>``."""


def encode_cursor(*, score: float, report_id: int) -> str:
    """The position after a page: its last item's (score, id), as ``<score>_<id>``."""
    return f"{score!r}_{report_id}"


def decode_cursor(cursor: str) -> tuple[float, int]:
    """The (score, id) position of a cursor; the API's pattern lets only such strings through."""
    if _CURSOR.fullmatch(cursor) is None:
        raise InvalidCursor("invalid cursor: expected <score>_<id>, as in next_cursor")
    score, _, report_id = cursor.rpartition("_")
    return float(score), int(report_id)


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

    ``cursor`` is a position (see :func:`encode_cursor`), not tied to a filter: the page holds the reports after it
    that match ``abuse_type``. Raises :class:`InvalidCursor` for a string not of the form ``<score>_<id>``. Keyset
    pagination: reports inserted while paging never shift the pages (higher-scored ones appear on a new first page,
    lower ones further on).
    """
    after = decode_cursor(cursor) if cursor is not None else None
    with db.read() as session:
        rows = moderation_repo.queue_page(session, owner=owner, limit=limit + 1, abuse_type=abuse_type, after=after)
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = encode_cursor(score=rows[-1].score, report_id=rows[-1].id) if more and rows else None
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
            # the online quality aggregates move in the same transaction (a correction moves counts, never adds)
            quality_repo.apply_outcome(
                session,
                report_id=target.id,
                previous=target.review_outcome,
                outcome=item.outcome,
                reviewed_at=item.reviewed_at or recorded_at,
            )
            results.append(
                FeedbackResult(
                    "recorded", target.id, target.client_report_id, item.outcome, previous_outcome=target.review_outcome
                )
            )
    return results
