"""The API's task cache (owner-checked, bounded) and the hand-built result body, which must match ``TaskResult``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from reportscore.api.schemas.tasks import TaskResult
from reportscore.jobs.cache import TaskCache
from reportscore.jobs.views import CallbackView, TaskView, task_body
from reportscore.storage.models import JobStatus
from reportscore.storage.repositories.jobs import ScoredReport

T0 = datetime(2026, 11, 27, 8, 0, 0, tzinfo=UTC)


def _view(task_id: str = "t1", *, n: int = 2, status: JobStatus = JobStatus.SUCCESS) -> TaskView:
    success = status == JobStatus.SUCCESS
    return TaskView(
        task_id=task_id,
        status=status,
        n_reports=n,
        attempts=1,
        created_at=T0,
        started_at=T0 + timedelta(microseconds=4000),
        finished_at=T0 + timedelta(milliseconds=9, microseconds=1),
        model_name="m" if success else None,
        model_version="1" if success else None,
        predict_ms=0.61234 if success else None,
        error=None if success else "scoring failed: boom",
        reports=[ScoredReport(id=i, client_report_id=f"r{i}" if i % 2 else None, score=i / 10) for i in range(n)]
        if success
        else None,
    )


def test_the_task_body_matches_the_documented_schema() -> None:
    delivery = CallbackView("pending", 2, T0, 500, "receiver answered HTTP 500", None)
    for view in (_view(), _view(status=JobStatus.FAILURE), replace(_view(), callback=delivery)):
        body = task_body(view)
        assert ("callback" in body) == (view.callback is not None)  # only tasks with a callback show its state
        exclude = {"callback"} if view.callback is None else None
        assert TaskResult.model_validate(body).model_dump(mode="json", exclude=exclude) == body
        assert "callback" not in task_body(view, with_callback=False)  # a callback's own body


def test_cache_is_owner_checked_and_says_pending_until_finished() -> None:
    cache = TaskCache()
    cache.accepted("t1", owner="a", n_reports=2)
    assert cache.get("t1", owner="b") is None
    pending = cache.get("t1", owner="a")
    assert pending is not None
    assert not pending.done
    cache.started(["t1"])
    started = cache.get("t1", owner="a")
    assert started is not None
    assert started.status == JobStatus.STARTED
    cache.finished([_view("t1")], {"t1": "a"})
    assert cache.get("t1", owner="a") == _view("t1")
    assert cache.get("t1", owner="b") is None
    cache.accepted("t2", owner="a", n_reports=1)
    cache.forget(["t2"])
    assert cache.get("t2", owner="a") is None  # unknown here: the caller reads the store


def test_cache_keeps_a_bounded_number_of_reports() -> None:
    cache = TaskCache(max_reports=30)
    for i in range(10):
        cache.remember(_view(f"t{i}", n=9), owner="a")
    assert cache.get("t0", owner="a") is None
    assert cache.get("t9", owner="a") is not None
    cache.remember(_view("p", status=JobStatus.PENDING), owner="a")
    assert cache.get("p", owner="a") is None  # only finished tasks are remembered


def test_a_pending_hint_is_valid_for_its_owner_and_epoch_until_it_expires() -> None:
    cache = TaskCache()
    cache.hint_pending("t1", owner="a", epoch=3, valid_s=2.0, now=100.0)
    assert cache.pending_hint("t1", owner="a", epoch=3, now=100.5) == 1.5
    assert cache.pending_hint("t1", owner="b", epoch=3, now=100.5) is None  # another owner's job
    assert cache.pending_hint("t1", owner="a", epoch=4, now=100.5) is None  # subscribed again since: may be missed
    assert cache.pending_hint("t1", owner="a", epoch=3, now=102.0) is None  # expired
    assert cache.pending_hint("t2", owner="a", epoch=3, now=100.5) is None
    assert cache.get("t1", owner="a") is None  # a hint is never shown as a task: a plain read asks the store


def test_hints_are_dropped_when_announced_and_when_expired() -> None:
    cache = TaskCache()
    for i in range(3):
        cache.hint_pending(f"t{i}", owner="a", epoch=1, valid_s=2.0, now=100.0 + i)
    assert cache.drop_hints(["t1", "x"]) == {"t1"}
    assert cache.pending_hint("t1", owner="a", epoch=1, now=102.5) is None
    cache.hint_pending("t9", owner="a", epoch=1, valid_s=2.0, now=102.5)  # t0 has expired: dropped on this add
    assert cache.hint_count() == 2
    assert cache.drop_hints(["t0"]) == set()


def test_hints_stay_bounded_when_announcements_are_lost() -> None:
    cache = TaskCache(max_hints=50)
    for i in range(10_000):  # 1000 submits a second, none of them announced
        cache.hint_pending(f"t{i}", owner="a", epoch=1, valid_s=0.02, now=i / 1000)
    assert cache.hint_count() <= 21  # the unexpired ones (submit rate times validity) and the newest
    assert cache.pending_hint("t9999", owner="a", epoch=1, now=9.9995) is not None
    for i in range(1000):  # all at once: the hard cap holds
        cache.hint_pending(f"u{i}", owner="a", epoch=1, valid_s=2.0, now=20.0)
    assert cache.hint_count() == 50
    assert cache.pending_hint("u999", owner="a", epoch=1, now=20.0) is not None
    assert cache.pending_hint("u0", owner="a", epoch=1, now=20.0) is None  # the oldest went first


def test_a_job_announced_before_it_was_handed_over_gets_no_hint() -> None:
    """A woken worker may claim a just-committed job with others and announce it before the API's runner is handed
    the job: a hint recorded after that announcement would only delay the long-poll."""
    cache = TaskCache()
    cache.hint_pending("t0", owner="a", epoch=1, valid_s=2.0, now=100.0)  # hints in use
    assert cache.drop_hints(["t1"], now=100.1) == set()  # t1 finished, not yet handed over here
    cache.hint_pending("t1", owner="a", epoch=1, valid_s=2.0, now=100.2)
    assert cache.pending_hint("t1", owner="a", epoch=1, now=100.3) is None
    cache.hint_pending("t2", owner="a", epoch=1, valid_s=2.0, now=100.2)  # not announced: hinted as usual
    assert cache.pending_hint("t2", owner="a", epoch=1, now=100.3) is not None
    # the announcement is remembered for a hint's validity only (bounded memory; ids are never reused anyway)
    cache.hint_pending("t1", owner="a", epoch=1, valid_s=2.0, now=102.5)
    assert cache.pending_hint("t1", owner="a", epoch=1, now=102.6) is not None
