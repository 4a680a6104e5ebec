"""What this process knows about tasks without asking the store: jobs it accepted and has not finished yet, and
recently finished ones (bounded LRU). Everything here is owner-checked: another owner's task is simply not found.

Only the event loop touches it: the API registers accepted jobs, the in-process runner records what it committed
just before it wakes the long-polls, so a woken long-poll reads its result here instead of from the store.
A finished task never changes again (the first committed result wins), so finished views never go stale. A miss
means "ask the store", never "unknown".

In distributed mode it also holds pending hints: "this process accepted job X of owner O, and its finish will be
announced on the subscription of epoch E". Only a long-poll uses them (to wait for the announcement instead of
reading the store first); a hint is never shown as a task, so a wrong one costs at most one delayed long-poll.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from reportscore.jobs.views import TaskView, pending_view
from reportscore.storage.models import JobStatus

V = TypeVar("V")


@dataclass
class _Pending:
    owner: str
    n_reports: int
    status: JobStatus


@dataclass(slots=True)
class _Hint:
    owner: str
    epoch: int
    expires_at: float
    """``time.monotonic()`` after which the hint is ignored."""


class TaskCache:
    def __init__(self, *, max_reports: int = 200_000, max_hints: int = 100_000) -> None:
        self._max_reports = max_reports
        self._max_hints = max_hints
        self._pending: dict[str, _Pending] = {}
        self._hints: OrderedDict[str, _Hint] = OrderedDict()
        self._announced: OrderedDict[str, float] = OrderedDict()
        """Jobs announced finished without a hint here, with when that stops mattering (see ``hint_pending``)."""
        self._hint_valid_s = 0.0
        self._done: OrderedDict[str, tuple[str, TaskView]] = OrderedDict()
        self._done_reports = 0

    def accepted(self, job_id: str, *, owner: str, n_reports: int) -> None:
        """A job this process committed and will score itself, reporting its end to ``finished`` or ``forget``."""
        self._pending[job_id] = _Pending(owner, n_reports, JobStatus.PENDING)

    def started(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            entry = self._pending.get(job_id)
            if entry is not None:
                entry.status = JobStatus.STARTED

    def forget(self, job_ids: list[str]) -> None:
        """The store is the only source for these jobs from now on."""
        for job_id in job_ids:
            self._pending.pop(job_id, None)

    def finished(self, views: list[TaskView], owners: dict[str, str]) -> None:
        """Committed results (``owners`` gives each job's owner)."""
        for view in views:
            self._pending.pop(view.task_id, None)
            owner = owners.get(view.task_id)
            if owner is not None:
                self.remember(view, owner=owner)

    def remember(self, view: TaskView, *, owner: str) -> None:
        """A finished job read from the store or just committed (not one with a callback, whose delivery state
        keeps changing)."""
        if not view.done or view.callback is not None or view.task_id in self._done:
            return
        self._done[view.task_id] = (owner, view)
        self._done_reports += _size(view)
        while self._done_reports > self._max_reports and self._done:
            _, (_, old) = self._done.popitem(last=False)
            self._done_reports -= _size(old)

    def get(self, job_id: str, *, owner: str) -> TaskView | None:
        """The task if known here and owned by ``owner``; None means: read the store."""
        done = self._done.get(job_id)
        if done is not None:
            return done[1] if done[0] == owner else None
        pending = self._pending.get(job_id)
        if pending is None or pending.owner != owner:
            return None
        return pending_view(job_id, status=pending.status, n_reports=pending.n_reports)

    # --- pending hints (distributed mode) -----------------------------------------------------------------------
    def hint_pending(self, job_id: str, *, owner: str, epoch: int, valid_s: float, now: float | None = None) -> None:
        """Job ``job_id`` of ``owner`` was accepted here; its finish will be announced on subscription ``epoch``.

        Hints are kept in insertion order, which is expiry order (one validity for all), so the expired ones are
        dropped from the front on every add: memory stays bounded by the submit rate times the validity even when
        announcements are lost (``max_hints`` caps it outright).
        """
        now = time.monotonic() if now is None else now
        self._hint_valid_s = valid_s
        hints = self._hints
        _expire(hints, now, self._max_hints - 1, _hint_expiry)  # room for the new one
        _expire(self._announced, now, self._max_hints, float)
        if job_id in self._announced:
            # A worker claimed the committed job with others and announced it before it was handed over here: a
            # hint now would only delay the long-poll.
            return
        hints[job_id] = _Hint(owner, epoch, now + valid_s)
        hints.move_to_end(job_id)

    def pending_hint(self, job_id: str, *, owner: str, epoch: int, now: float | None = None) -> float | None:
        """Seconds the hint for this job stays valid; None without a valid one (none, another owner's, recorded on
        an earlier subscription whose announcements may have been missed, or expired)."""
        hint = self._hints.get(job_id)
        if hint is None or hint.owner != owner or hint.epoch != epoch:
            return None
        remaining = hint.expires_at - (time.monotonic() if now is None else now)
        return remaining if remaining > 0 else None

    def drop_hints(self, job_ids: Iterable[str], *, now: float | None = None) -> set[str]:
        """The jobs' finish was announced: forget their hints; returns the ids that had one (accepted here).

        While hints are in use, the others are remembered for a hint's validity, so a job announced before it was
        handed over to this process's runner gets no hint (``hint_pending``)."""
        hints = self._hints
        hinted = set()
        until = (time.monotonic() if now is None else now) + self._hint_valid_s
        for job_id in job_ids:
            if hints.pop(job_id, None) is not None:
                hinted.add(job_id)
            elif self._hint_valid_s > 0:
                self._announced[job_id] = until
        return hinted

    def hint_count(self) -> int:
        return len(self._hints)


def _expire(entries: OrderedDict[str, V], now: float, max_entries: int, expires_at: Callable[[V], float]) -> None:
    """Drop entries whose time is up from the front (insertion order is expiry order), and any beyond the cap."""
    while entries:
        if expires_at(next(iter(entries.values()))) > now and len(entries) <= max_entries:
            break
        entries.popitem(last=False)


def _hint_expiry(hint: _Hint) -> float:
    return hint.expires_at


def _size(view: TaskView) -> int:
    return 1 + (len(view.reports) if view.reports else 0)
