"""Distributed long-poll notifications: job ids plus the committed results of jobs without a callback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from reportscore.jobs.cache import TaskCache
from reportscore.jobs.notifications import LocalNotifier, RedisSubscriber, decode_done, encode_done
from reportscore.jobs.views import CallbackView, TaskView
from reportscore.storage.models import JobStatus
from reportscore.storage.repositories.jobs import ScoredReport

T0 = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)


def _view(job_id: str, *, status: JobStatus = JobStatus.SUCCESS, callback: CallbackView | None = None) -> TaskView:
    ok = status == JobStatus.SUCCESS
    return TaskView(
        task_id=job_id,
        status=status,
        n_reports=2,
        attempts=1,
        created_at=T0,
        started_at=T0 + timedelta(milliseconds=3),
        finished_at=T0 + timedelta(milliseconds=7, microseconds=1),
        model_name="m" if ok else None,
        model_version="1" if ok else None,
        predict_ms=0.123456789 if ok else None,
        error=None if ok else "scoring failed: boom",
        reports=[ScoredReport(1, "a", 0.1 + 0.2), ScoredReport(2, None, 1 / 3)] if ok else None,
        callback=callback,
    )


def _subscriber() -> tuple[RedisSubscriber, LocalNotifier, TaskCache]:
    local, cache = LocalNotifier(), TaskCache()
    return RedisSubscriber("redis://unused", prefix="p", local=local, cache=cache), local, cache


def test_results_round_trip_to_the_waiting_owner_only() -> None:
    views = {"j1": _view("j1"), "j2": _view("j2", status=JobStatus.FAILURE)}
    message = encode_done(["j1", "j2", "j3"], views, {"j1": "alice", "j2": "bob"})
    assert decode_done(message)[0] == ["j1", "j2", "j3"]
    subscriber, local, cache = _subscriber()

    async def wait_and_wake() -> None:
        with local.subscribe("j1") as e1, local.subscribe("j2") as e2, local.subscribe("j3") as e3:
            subscriber.on_message(message)
            assert all(e.is_set() for e in (e1, e2, e3))

    asyncio.run(wait_and_wake())
    assert cache.get("j1", owner="alice") == views["j1"]  # exactly what was committed (floats and datetimes too)
    assert cache.get("j2", owner="bob") == views["j2"]
    assert cache.get("j1", owner="bob") is None  # another owner's task is not found here
    assert cache.get("j3", owner="alice") is None  # no result sent: the store answers


def test_only_jobs_with_a_local_waiter_are_cached() -> None:
    subscriber, _, cache = _subscriber()
    subscriber.on_message(encode_done(["j1"], {"j1": _view("j1")}, {"j1": "alice"}))
    assert cache.get("j1", owner="alice") is None


def test_jobs_with_a_callback_or_not_in_owners_travel_as_ids_only() -> None:
    callback = CallbackView(
        status="PENDING", attempts=0, last_attempt_at=None, last_status_code=None, last_error=None, finished_at=None
    )
    views = {"j1": _view("j1", callback=callback), "j2": _view("j2")}
    assert encode_done(["j1", "j2"], views, {"j1": "alice"}) == b"j1,j2,"
    assert encode_done(["j1", "j2"]) == b"j1,j2,"


def test_an_older_reader_still_finds_every_id() -> None:
    message = encode_done(["j1", "j2"], {"j1": _view("j1")}, {"j1": "alice"})
    assert {"j1", "j2"} <= set(message.decode().split(","))  # the previous subscriber split the whole text


def test_an_unreadable_result_leaves_the_store_to_answer() -> None:
    subscriber, local, cache = _subscriber()

    async def wait_and_wake() -> None:
        with local.subscribe("j1") as e1:
            subscriber.on_message(b"j1,\n{not json")
            assert e1.is_set()

    asyncio.run(wait_and_wake())
    assert cache.get("j1", owner="alice") is None


def test_an_announcement_drops_hints_and_caches_jobs_accepted_here_for_their_owner() -> None:
    subscriber, _, cache = _subscriber()
    for job_id in ("j1", "j2", "j3"):
        cache.hint_pending(job_id, owner="alice", epoch=1, valid_s=60.0)
    views = {"j1": _view("j1"), "j2": _view("j2")}
    subscriber.on_message(encode_done(["j1", "j2", "j4"], views, {"j1": "alice", "j2": "bob"}))
    assert cache.pending_hint("j1", owner="alice", epoch=1) is None  # announced: no longer pending
    assert cache.pending_hint("j2", owner="alice", epoch=1) is None
    assert cache.pending_hint("j3", owner="alice", epoch=1) is not None  # not announced yet
    assert cache.get("j1", owner="alice") == views["j1"]  # no waiter yet, but the client's long-poll will come
    assert cache.get("j2", owner="bob") == views["j2"]  # kept for the owner the worker committed it for
    assert cache.get("j2", owner="alice") is None  # and only for that owner
    assert cache.get("j4", owner="alice") is None  # neither accepted here nor waited for: no result sent


def test_an_ids_only_announcement_drops_hints_and_caches_nothing() -> None:
    subscriber, _, cache = _subscriber()
    cache.hint_pending("j1", owner="alice", epoch=1, valid_s=60.0)
    subscriber.on_message(encode_done(["j1"]))
    assert cache.hint_count() == 0
    assert cache.get("j1", owner="alice") is None


def test_no_epoch_is_offered_while_disconnected() -> None:
    subscriber, _, _ = _subscriber()
    assert subscriber.live_epoch() is None
    subscriber.connected, subscriber.epoch = True, 2
    assert subscriber.live_epoch() == 2
