"""Group commit: concurrent writers share one transaction, so N requests cost one durable commit instead of N.

A group (taken by :class:`reportscore.batching.ThreadBatches`) runs every caller's work straight in the shared
transaction (a SAVEPOINT per caller cost more than the work itself). If any work raises, that transaction is rolled
back and each caller's work runs again in a transaction of its own (:func:`reportscore.batching.isolate_sync`), so
one caller's error (an idempotency conflict, a constraint) fails only that caller; work must therefore be safe to
run twice (each run starts from what is committed). Results are handed back only after the COMMIT returned, so what
a ``202`` promises is unchanged: the caller's rows are durable.

Work items with the same non-None ``batch_key`` attribute run together through their ``run_batch(session,
items)`` (a list of results in the same order), so a group of submits can insert all its rows in a few
statements; on a failure the isolated retry runs each item alone as usual.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from reportscore.batching import Limits, ThreadBatches, isolate_sync
from reportscore.storage.db import Database

T = TypeVar("T")
_Item = tuple[Callable[[Session], Any], Future[Any]]


class GroupCommitter:
    def __init__(self, db: Database, *, max_group: int = 256, linger_ms: float = 0.3) -> None:
        self._db = db
        # Requests answered together (a micro-batch of /score) arrive a few microseconds apart: the linger waits a
        # moment for them, a fraction of what the durable commit costs, so they share one.
        self._queue: ThreadBatches[_Item] = ThreadBatches(Limits(max_items=max_group, linger_s=linger_ms / 1000.0))
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
            self._queue.close()
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
        while (group := self._queue.take()) is not None:
            self._commit(group)

    def _commit(self, group: list[_Item]) -> None:
        for items, outcome in isolate_sync(group, self._transaction):
            if isinstance(outcome, Exception):
                for _, future in items:
                    future.set_exception(outcome)
                continue
            self.groups += 1
            self.items += len(items)
            for (_, future), result in zip(items, outcome, strict=True):
                future.set_result(result)

    def _transaction(self, group: list[_Item]) -> list[Any]:
        """Every work of the group in one transaction: their results once it committed."""
        with self._db.write() as session:
            return _run_all(session, [work for work, _ in group])


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
