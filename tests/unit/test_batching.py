"""The one batching helper (take one, drain up to N, linger) and its failure isolation, as ``/score``'s
micro-batcher, the group committer and the embedded runner use them: a bad item fails alone, never the items batched
with it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reportscore.batching import AsyncBatches, Limits, ThreadBatches, isolate_sync
from reportscore.jobs import submission as jobs_submission
from reportscore.jobs.notifications import LocalNotifier
from reportscore.runners import inprocess
from reportscore.runners.inprocess import InProcessRunner
from reportscore.scoring.batching import MicroBatcher
from reportscore.scoring.registry import ModelRegistry
from reportscore.scoring.service import BatchOutcome
from reportscore.storage.db import Database
from reportscore.storage.group_commit import GroupCommitter
from reportscore.storage.models import Job
from tests.fakes import POISON_TEXT_LEN, FakeModel, fake_serving_model

REPORT = {
    "abuse_type": "MSG",
    "report_text_len": 1,
    "profile_rating": 1.0,
    "popularity": 1,
    "lifetime_matches_created": 1,
}


def test_thread_batches_drain_up_to_the_size_limit_and_stop_after_what_was_queued() -> None:
    batches: ThreadBatches[int] = ThreadBatches(Limits(max_size=5, size=lambda n: n))
    for n in (2, 2, 2, 1):
        batches.put(n)
    batches.close()
    batches.put(9)  # after close: never taken
    assert batches.take() == [2, 2, 2]  # 6 >= 5: full once the limit is reached
    assert batches.take() == [1]
    assert batches.take() is None


def test_async_batches_keep_an_item_that_must_go_alone_for_the_next_batch() -> None:
    async def run() -> list[list[int]]:
        batches: AsyncBatches[int] = AsyncBatches(Limits(max_items=10, alone=lambda n: n < 0))
        for n in (1, 2, -3, 4, -5):
            batches.put_nowait(n)
        return [await batches.take() for _ in range(4)]

    assert asyncio.run(run()) == [[1, 2], [-3], [4], [-5]]


def test_a_failed_batch_is_retried_item_by_item() -> None:
    runs: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        runs.append(items)
        if 13 in items:
            raise ValueError("unlucky")
        return [n * 2 for n in items]

    outcome = isolate_sync([1, 13, 3], run)
    assert runs == [[1, 13, 3], [1], [13], [3]]
    assert [items for items, _ in outcome] == [[1], [13], [3]]
    assert outcome[0][1] == [2]
    assert outcome[2][1] == [6]
    assert isinstance(outcome[1][1], ValueError)


class _HeldModel(FakeModel):
    """Says when a call has entered the model (and is held there by the gate)."""

    def __init__(self, *, gate: threading.Event) -> None:
        super().__init__(gate=gate)
        self.entered = threading.Event()

    def predict(self, matrix: Any) -> Any:
        self.entered.set()
        return super().predict(matrix)


def test_a_poison_request_fails_alone_in_the_score_micro_batch() -> None:
    model = _HeldModel(gate=threading.Event())  # holds the first call so the next three requests share a batch
    registry = cast(ModelRegistry, SimpleNamespace(current=fake_serving_model(model)))
    poison = {**REPORT, "report_text_len": POISON_TEXT_LEN}

    async def run() -> list[Any]:
        batcher = MicroBatcher(registry, max_reports=100, max_wait_ms=0)
        await batcher.start()
        try:
            first = asyncio.create_task(batcher.score([REPORT]))
            assert await asyncio.to_thread(model.entered.wait, 10)  # the first call is held in the model
            others = [
                asyncio.create_task(batcher.score(reports))
                for reports in ([{**REPORT, "popularity": 2}], [poison], [{**REPORT, "popularity": 4}, REPORT])
            ]
            assert model.gate is not None
            model.gate.set()
            return await asyncio.gather(first, *others, return_exceptions=True)
        finally:
            await batcher.stop()

    first, good, bad, good_two = asyncio.run(run())
    assert first.scores == [0.2]
    assert good.scores == [0.4]
    assert isinstance(bad, ValueError)
    assert good_two.scores == [0.8, 0.2]
    assert 4 in model.calls  # the three later requests were first tried as one batch of 4 reports


def test_a_failed_group_is_retried_per_item_each_in_its_own_transaction(db: Database) -> None:
    committer = GroupCommitter(db)
    sessions: list[Session] = []
    good = jobs_submission.submission(reports=[REPORT], owner="t", idempotency_key=None, ttl_s=60)

    def tracked(session: Session) -> Any:
        sessions.append(session)
        return good(session)

    def bad(session: Session) -> Any:
        sessions.append(session)
        good(session)  # writes, then fails: none of it may stay
        raise ValueError("boom")

    futures: list[Future[Any]] = [Future(), Future(), Future()]
    committer._commit([(tracked, futures[0]), (bad, futures[1]), (tracked, futures[2])])
    assert futures[0].result().created
    assert futures[2].result().created
    with pytest.raises(ValueError, match="boom"):
        futures[1].result()
    assert len(sessions) == 5  # the group up to the failure, then each item again
    assert sessions[0] is sessions[1]  # the group shared one transaction
    assert len({id(s) for s in sessions[1:]}) == 4  # then each item in a transaction (and session) of its own
    assert committer.groups == 2  # the two good items' own commits
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 2


def test_a_failed_batch_of_the_embedded_runner_is_scored_job_by_job(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def score_jobs(*, job_ids: list[str], **_: Any) -> BatchOutcome:
        calls.append(list(job_ids))
        if "bad" in job_ids:
            raise RuntimeError("the store refused this job")
        return BatchOutcome(succeeded=list(job_ids))

    monkeypatch.setattr(inprocess, "score_jobs", score_jobs)
    notifier = LocalNotifier()
    runner = InProcessRunner(
        db=db,
        registry=cast(ModelRegistry, SimpleNamespace(current=None)),
        notifier=notifier,
        threads=1,
        max_pending=10,
        batch_max_reports=100,
        max_attempts=3,
    )

    async def run() -> None:
        await runner.start()
        try:
            with notifier.subscribe("c") as finished:
                for job_id in ("a", "bad", "c"):
                    runner.reserve()
                    runner.submit(job_id, 1)
                async with asyncio.timeout(10):
                    await finished.wait()
        finally:
            await runner.stop(drain_s=1)

    asyncio.run(run())
    assert calls[:4] == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]  # the batch, then each job alone
    assert runner.pending() == 1  # only the bad job is still queued (alone, for a later retry)
