"""The long-poll's use of pending hints: it skips the first store read only for a valid hint, never returns the
hint itself, and a lost announcement delays it by at most the hint's validity."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from reportscore.jobs import views as task_views
from reportscore.jobs.cache import TaskCache
from reportscore.jobs.notifications import LocalNotifier, RedisSubscriber, encode_done
from reportscore.jobs.service import JobsService
from reportscore.jobs.views import TaskView
from reportscore.settings import Settings
from reportscore.storage.models import JobStatus
from reportscore.storage.repositories.jobs import ScoredReport

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
OWNER = "alice"
JOB = "6a1f1f3e-0b8e-4f0e-8a55-7a0e9b2b1c33"


def _view(status: JobStatus) -> TaskView:
    done = status == JobStatus.SUCCESS
    return TaskView(
        task_id=JOB,
        status=status,
        n_reports=1,
        attempts=1,
        created_at=T0,
        started_at=T0,
        finished_at=T0 if done else None,
        model_name="m" if done else None,
        model_version="1" if done else None,
        predict_ms=0.5 if done else None,
        error=None,
        reports=[ScoredReport(1, None, 0.25)] if done else None,
    )


@dataclass
class Store:
    """Stands in for ``task_views.get_task``: what the store says, and how often it was asked."""

    view: TaskView
    reads: list[float] = field(default_factory=list)

    def get_task(self, *, db: Any, task_id: str, owner: str) -> TaskView | None:
        self.reads.append(time.monotonic())
        return self.view if task_id == JOB and owner == OWNER else None


def _state(monkeypatch: pytest.MonkeyPatch, store: Store, *, connected: bool = True) -> JobsService:
    monkeypatch.setattr(task_views, "get_task", store.get_task)
    local, cache = LocalNotifier(), TaskCache()
    subscriber = RedisSubscriber("redis://unused", prefix="p", local=local, cache=cache)
    subscriber.connected, subscriber.epoch = connected, 1
    local.reliable_source = subscriber
    return JobsService(
        settings=cast(Settings, SimpleNamespace(long_poll_max_s=60.0)),
        db=cast(Any, None),
        runner=cast(Any, None),
        notifier=local,
        committer=cast(Any, None),
        batcher=cast(Any, None),
        tasks=cache,
        subscriber=subscriber,
    )


def _timed_view(state: JobsService, wait: float) -> tuple[TaskView | None, float]:
    async def run() -> tuple[TaskView | None, float]:
        t0 = time.monotonic()
        view = await state.read(owner=OWNER, task_id=JOB, wait=wait)
        return view, time.monotonic() - t0

    return asyncio.run(run())


def test_a_lost_announcement_delays_the_long_poll_by_at_most_the_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(_view(JobStatus.SUCCESS))  # the job finished, but its announcement never came
    state = _state(monkeypatch, store)
    state.tasks.hint_pending(JOB, owner=OWNER, epoch=1, valid_s=0.3)
    view, elapsed = _timed_view(state, wait=10)
    assert view == store.view  # the real state, read once the hint ran out
    assert len(store.reads) == 1
    assert 0.2 <= elapsed < 1.5, f"answered after {elapsed:.2f}s"


def test_a_job_still_pending_after_the_hint_is_read_then_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(_view(JobStatus.STARTED))
    state = _state(monkeypatch, store)
    state.tasks.hint_pending(JOB, owner=OWNER, epoch=1, valid_s=0.2)
    view, elapsed = _timed_view(state, wait=0.6)
    assert view == store.view  # the store's answer, never a placeholder built from the hint
    assert len(store.reads) == 1  # no polling: one read at the hint's expiry, then the wait to the deadline
    assert 0.5 <= elapsed < 2.0


def test_a_deadline_before_the_hint_expires_still_reads_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(_view(JobStatus.STARTED))
    state = _state(monkeypatch, store)
    state.tasks.hint_pending(JOB, owner=OWNER, epoch=1, valid_s=30.0)
    view, elapsed = _timed_view(state, wait=0.2)
    assert view == store.view
    assert len(store.reads) == 1
    assert elapsed < 1.5


def test_an_announcement_answers_the_hinted_long_poll_without_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(_view(JobStatus.STARTED))
    state = _state(monkeypatch, store)
    state.tasks.hint_pending(JOB, owner=OWNER, epoch=1, valid_s=30.0)
    finished = _view(JobStatus.SUCCESS)
    subscriber = state.subscriber
    assert subscriber is not None

    async def run() -> TaskView | None:
        message = encode_done([JOB], {JOB: finished}, {JOB: OWNER})
        asyncio.get_running_loop().call_later(0.1, subscriber.on_message, message)
        return await state.read(owner=OWNER, task_id=JOB, wait=10)

    t0 = time.monotonic()
    assert asyncio.run(run()) == finished
    assert store.reads == []
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    ("case", "owner", "epoch", "connected"),
    [
        ("another owner's hint", "bob", 1, True),
        ("recorded before a resubscription", OWNER, 0, True),
        ("subscription down", OWNER, 1, False),
    ],
)
def test_an_invalid_hint_does_not_skip_the_first_read(
    monkeypatch: pytest.MonkeyPatch, case: str, owner: str, epoch: int, connected: bool
) -> None:
    store = Store(_view(JobStatus.SUCCESS))
    state = _state(monkeypatch, store, connected=connected)
    state.tasks.hint_pending(JOB, owner=owner, epoch=epoch, valid_s=30.0)
    view, elapsed = _timed_view(state, wait=10)
    assert view == store.view, case
    assert len(store.reads) == 1, case
    assert elapsed < 1.0, f"{case}: waited {elapsed:.2f}s on a hint it should not trust"


def test_a_read_without_wait_ignores_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(_view(JobStatus.SUCCESS))
    state = _state(monkeypatch, store)
    state.tasks.hint_pending(JOB, owner=OWNER, epoch=1, valid_s=30.0)
    view, elapsed = _timed_view(state, wait=0)
    assert view == store.view
    assert len(store.reads) == 1
    assert elapsed < 1.0
