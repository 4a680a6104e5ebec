"""The one jobs service: submit a batch, score one in the request, read a task and wait for it to finish.

The FastAPI routes and the fast path are thin adapters over it: each renders an :class:`Answer` (status, JSON
body, headers) its own way, so both answer the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from reportscore.drift import service as drift
from reportscore.jobs import submission
from reportscore.jobs import views as task_views
from reportscore.jobs.cache import TaskCache
from reportscore.jobs.notifications import LocalNotifier, RedisSubscriber
from reportscore.jobs.views import TaskView
from reportscore.runners.base import Runner
from reportscore.scoring.batching import MicroBatcher
from reportscore.settings import Settings
from reportscore.shadow.scorer import ShadowScorer
from reportscore.storage.db import Database
from reportscore.storage.group_commit import GroupCommitter


@dataclass(slots=True)
class Answer:
    """An answer of the jobs service, rendered by the route or by the fast path."""

    status: int
    body: Any
    headers: dict[str, str] | None = None
    task_id: str | None = None
    """For the access log."""


@dataclass
class JobsService:
    """Submit, score, read and wait, over this process's runner, group committer, micro-batcher, notifier and task
    cache (all built in the app's lifespan)."""

    settings: Settings
    db: Database
    runner: Runner
    notifier: LocalNotifier
    committer: GroupCommitter
    batcher: MicroBatcher
    tasks: TaskCache
    subscriber: RedisSubscriber | None = None
    """Distributed mode: this process's subscription to finish announcements (its epoch validates pending hints)."""
    shadows: ShadowScorer | None = None
    """Scores persisted ``/score`` jobs with the shadow versions after the response's job is committed."""

    async def submit(
        self,
        *,
        owner: str,
        reports: list[dict[str, Any]],
        idempotency_key: str | None,
        callback_url: str | None = None,
    ) -> Answer:
        """Store the validated reports as one durable job and queue it: 202 once committed (409 for a reused
        Idempotency-Key with another body, 503 while too many jobs are pending)."""
        runner = self.runner
        if not runner.has_capacity():
            return Answer(
                503,
                {"detail": f"too many pending jobs ({runner.pending()}); retry later"},
                {"Retry-After": str(self.settings.retry_after_s)},
            )
        work = submission.submission(
            reports=reports,
            owner=owner,
            idempotency_key=idempotency_key,
            ttl_s=self.settings.idempotency_ttl_s,
            callback_url=callback_url,
        )
        runner.reserve()
        try:
            try:
                submitted = await self.committer.run(work)
            except IntegrityError:
                if idempotency_key is None:
                    raise
                submitted = await self.committer.run(work)  # lost a race for this key: now it reads the winner's
        except submission.IdempotencyConflict:
            runner.release()
            return Answer(409, {"detail": "this Idempotency-Key was already used with a different request body"})
        except BaseException:
            runner.release()
            raise
        if submitted.created:
            runner.submit(
                submitted.job_id,
                len(reports),
                owner=owner,
                features=submission.handover(submitted, reports) if runner.uses_features else None,
            )
        else:
            runner.release()
        return Answer(
            202,
            {"task_id": submitted.job_id, "status": "PENDING"},
            {"Location": f"/task/{submitted.job_id}"},
            submitted.job_id,
        )

    async def score(self, *, owner: str, reports: list[dict[str, Any]], persist: bool, received_at: datetime) -> Answer:
        """Score in this request through the process's micro-batcher; with ``persist`` the job is committed
        first."""
        scored = await self.batcher.score(reports)
        task_id = None
        if persist:
            task_id = await self.committer.run(
                submission.scored_submission(
                    reports=reports,
                    scores=scored.scores,
                    owner=owner,
                    model_name=scored.model.name,
                    model_version=scored.model.version,
                    predict_ms=scored.predict_ms,
                    received_at=received_at,
                    count_drift=drift.counter(
                        self.db, model_name=scored.model.name, model_version=scored.model.version
                    ),
                )
            )
            if self.shadows is not None:  # non-blocking: the shadows read the committed job back later
                self.shadows.offer(job_ids=[task_id], n_reports=len(reports))
        return Answer(
            200,
            {
                "score": scored.scores,
                "model": {"name": scored.model.name, "version": scored.model.version},
                "task_id": task_id,
            },
            task_id=task_id,
        )

    async def read(self, *, owner: str, task_id: str, wait: float) -> TaskView | None:
        """The task (None: unknown, or another tenant's), long-polling up to ``wait`` seconds (capped) for it to
        end."""
        wait = min(wait, self.settings.long_poll_max_s)
        if wait > 0:
            return await self._wait(owner, task_id, wait)
        return await self._lookup(owner, task_id)

    async def _lookup(self, owner: str, task_id: str) -> TaskView | None:
        """The task from this process's cache, else from the store (a finished one is then cached: it never
        changes)."""
        view = self.tasks.get(task_id, owner=owner)
        if view is not None:
            return view
        view = await run_in_threadpool(task_views.get_task, db=self.db, task_id=task_id, owner=owner)
        if view is not None and view.done:
            self.tasks.remember(view, owner=owner)
        return view

    async def _wait(self, owner: str, task_id: str, wait: float) -> TaskView | None:
        """Long-poll: read once, then sleep until the job's finish is announced (no polling while notifications
        are reliable; a re-read once a second while they are not).

        A job this process accepted moments ago (a valid pending hint) is almost always still pending, and its
        finish will be announced here: the first read is skipped and the first wait is capped at the hint's
        validity. After that wake-up or timeout the task is read for real, so the caller never sees the hint."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        with self.notifier.subscribe(task_id) as finished:  # subscribe before reading: no finish is missed
            hint_s = self._pending_hint_s(owner, task_id)
            if hint_s is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(hint_s, deadline - loop.time())):
                        await finished.wait()
                finished.clear()
            view = await self._lookup(owner, task_id)
            while view is not None and not view.done:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                timeout = remaining if self.notifier.reliable else min(remaining, 1.0)
                try:
                    async with asyncio.timeout(timeout):  # no extra task per wait, unlike wait_for
                        await finished.wait()
                except TimeoutError:
                    if self.notifier.reliable and loop.time() >= deadline:
                        break
                finished.clear()
                view = await self._lookup(owner, task_id)
        return view

    def _pending_hint_s(self, owner: str, task_id: str) -> float | None:
        """How long the job's pending hint stays valid; None when the first read must not be skipped (no hint,
        another owner's, recorded before the subscription was last re-established, expired, or the task is
        already cached)."""
        subscriber = self.subscriber
        epoch = None if subscriber is None else subscriber.live_epoch()
        if epoch is None:
            return None
        hint_s = self.tasks.pending_hint(task_id, owner=owner, epoch=epoch)
        if hint_s is None or self.tasks.get(task_id, owner=owner) is not None:
            return None
        return hint_s


def task_answer(task_id: str, view: TaskView | None) -> Answer:
    """``GET /task/{id}`` without reasons: 404, 202 while pending, or the finished task."""
    if view is None:
        return Answer(404, {"detail": f"task {task_id} not found"}, task_id=task_id)
    if not view.done:
        return Answer(202, task_views.pending_body(view), task_id=task_id)
    return Answer(200, task_views.task_body(view), task_id=task_id)
