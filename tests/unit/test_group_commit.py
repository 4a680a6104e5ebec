"""The group committer: a failing work item does not sink the others of its group; after stop, work is refused."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reportscore.jobs import submission as jobs_submission
from reportscore.storage.db import Database
from reportscore.storage.group_commit import GroupCommitter
from reportscore.storage.models import Job

REPORT = {
    "abuse_type": "MSG",
    "report_text_len": 1,
    "profile_rating": 1.0,
    "popularity": 1,
    "lifetime_matches_created": 1,
}


def test_one_failing_item_rolls_back_only_its_own_part(db: Database) -> None:
    committer = GroupCommitter(db)
    good = jobs_submission.submission(reports=[REPORT], owner="t", idempotency_key=None, ttl_s=60)

    def bad(session: Session) -> Any:
        good(session)  # writes, then fails: none of it may stay
        raise ValueError("boom")

    futures: list[Future[Any]] = [Future(), Future(), Future()]
    committer._commit([(good, futures[0]), (bad, futures[1]), (good, futures[2])])
    assert futures[0].result().created
    assert futures[2].result().created
    with pytest.raises(ValueError, match="boom"):
        futures[1].result()
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 2


def test_work_after_stop_is_refused(db: Database) -> None:
    committer = GroupCommitter(db)
    committer.start()
    assert committer.run_sync(lambda s: 1) == 1
    committer.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        committer.run_sync(lambda s: 2)
