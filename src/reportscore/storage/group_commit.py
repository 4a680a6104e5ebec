"""Group commit: concurrent writers share one transaction, so N requests cost one durable commit instead of N.

A group first runs every caller's work straight in the shared transaction (a SAVEPOINT per caller cost more than
the work itself). If any work raises, that transaction is rolled back and the group runs again with each caller's
work in its own SAVEPOINT, so one caller's error (an idempotency conflict, a constraint) rolls back only its own
part; work must therefore be safe to run twice (each run starts from what is committed). Results are handed back
only after the COMMIT returned, so what a ``202`` promises is unchanged: the caller's rows are durable.

On PostgreSQL, work items with the same non-None ``batch_key`` attribute run together through their ``run_batch(session,
items)`` (a list of results in the same order), so a group of submits can insert all its rows in a few
statements; on a failure the isolated retry runs each item alone as usual.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from reportscore.storage.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
_Item = tuple[Callable[[Session], Any], Future[Any]]


class GroupCommitter:
    def __init__(self, db: Database, *, max_group: int = 256, linger_ms: float = 0.3) -> None:
        self._db = db
        self._max_group = max_group
        self._linger_s = linger_ms / 1000.0
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
        self.groups = 0
        self.items = 0
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Commit what was queued, then refuse new work (a scoring thread still running after the shutdown drain
        gets an error instead of waiting forever; its jobs stay unfinished for the next start)."""
        with self._lock:
            self._stopped = True
            self._queue.put(None)
        self._thread.join(timeout=30)

    def _enqueue(self, work: Callable[[Session], Any], future: Future[Any]) -> None:
        with self._lock:
            if self._stopped:
                raise RuntimeError("the group committer is stopped")
            self._queue.put((work, future))

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in the next group; returns its result once the group's commit is durable."""
        future: Future[T] = Future()
        self._enqueue(work, future)
        return await asyncio.wrap_future(future)

    def run_sync(self, work: Callable[[Session], T]) -> T:
        future: Future[T] = Future()
        self._enqueue(work, future)
        return future.result()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            linger_until = time.monotonic() + self._linger_s
            while len(group) < self._max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    # Requests answered together (a micro-batch of /score) arrive a few microseconds apart: wait a
                    # moment for them, a fraction of what the durable commit costs, so they share one.
                    remaining = linger_until - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        nxt = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if nxt is None:
                    self._queue.put(None)  # finish this group, then stop
                    break
                group.append(nxt)
            self._commit(group)

    def _commit(self, group: list[_Item]) -> None:
        try:
            with self._db.write() as session:
                if self._db.is_sqlite:  # one row at a time is as fast there, and the order stays as queued
                    results = [work(session) for work, _ in group]
                else:
                    results = _run_all(session, [work for work, _ in group])
        except Exception:
            self._commit_isolated(group)  # someone's work failed: find whose, without losing the others'
            return
        self.groups += 1
        self.items += len(group)
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)

    def _commit_isolated(self, group: list[_Item]) -> None:
        outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            with self._db.write() as session:
                for work, future in group:
                    try:
                        with session.begin_nested():
                            outcomes.append((future, work(session), None))
                    except Exception as exc:
                        outcomes.append((future, None, exc))
        except Exception as exc:  # the transaction itself failed: nothing of this group is durable
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self.groups += 1
        self.items += len(group)
        for future, result, error in outcomes:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


def _run_all(session: Session, works: list[Callable[[Session], Any]]) -> list[Any]:
    """Every work's result, in order: items sharing a ``batch_key`` through one ``run_batch`` call, others alone."""
    results: list[Any] = [None] * len(works)
    batches: dict[Hashable, list[int]] = {}
    for i, work in enumerate(works):
        key = getattr(work, "batch_key", None)
        if key is None:
            results[i] = work(session)
        else:
            batches.setdefault(key, []).append(i)
    for indexes in batches.values():
        first = works[indexes[0]]
        batch_results = first.run_batch(session, [works[i] for i in indexes])  # type: ignore[attr-defined]
        for i, result in zip(indexes, batch_results, strict=True):
            results[i] = result
    return results
