"""One batching loop for every queue: take one item, drain up to N more (by count or by size), linger a moment for
stragglers; and one failure isolation: a batch that fails is retried item by item, so an item is never failed
merely for sharing a batch with a bad one.

:class:`AsyncBatches` serves asyncio queues (the ``/score`` micro-batcher, the embedded runner's dispatchers),
:class:`ThreadBatches` thread queues (the group committer, the Celery publisher). :func:`isolate` and
:func:`isolate_sync` run a batch with that isolation.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Limits(Generic[T]):
    """When a batch is full, and how long its first item waits for company."""

    max_items: int | None = None
    """At most this many items (None: no limit by count)."""
    max_size: int | None = None
    """Stop draining once the items' total ``size`` reaches this (None: no limit by size)."""
    size: Callable[[T], int] | None = None
    """An item's size (default 1)."""
    linger_s: float = 0.0
    """After the queue runs dry, wait up to this long (from the first item) for more."""
    alone: Callable[[T], bool] | None = None
    """An item that must be batched alone: it ends the batch before it (and goes first in the next one)."""

    def weight(self, item: T) -> int:
        return 1 if self.size is None else self.size(item)

    def full(self, count: int, total: int) -> bool:
        return (self.max_items is not None and count >= self.max_items) or (
            self.max_size is not None and total >= self.max_size
        )

    def is_alone(self, item: T) -> bool:
        return self.alone is not None and self.alone(item)


class AsyncBatches(Generic[T]):
    """An asyncio queue read a batch at a time (one reader per instance, or several sharing it)."""

    def __init__(self, limits: Limits[T], *, maxsize: int = 0) -> None:
        self.limits = limits
        self.queue: asyncio.Queue[T] = asyncio.Queue(maxsize=maxsize)
        self._carry: list[T] = []

    def put_nowait(self, item: T) -> None:
        self.queue.put_nowait(item)

    async def put(self, item: T) -> None:
        await self.queue.put(item)

    async def take(self) -> list[T]:
        """The next batch: waits for one item, then drains and lingers within the limits."""
        limits = self.limits
        first = self._carry.pop() if self._carry else await self.queue.get()
        batch = [first]
        if limits.is_alone(first):
            return batch
        total = limits.weight(first)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.linger_s
        while not limits.full(len(batch), total):
            if self.queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await self.queue.get()
                except TimeoutError:
                    break
            else:
                item = self.queue.get_nowait()
            if limits.is_alone(item):
                self._carry.append(item)
                break
            batch.append(item)
            total += limits.weight(item)
        return batch


class ThreadBatches(Generic[T]):
    """A thread queue read a batch at a time by one thread; ``close()`` ends the reader after what is queued."""

    _STOP = object()

    def __init__(self, limits: Limits[T]) -> None:
        self.limits = limits
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = False
        """The reader met the end: nothing queued after ``close()`` is taken."""

    def put(self, item: T) -> None:
        self._queue.put(item)

    def close(self) -> None:
        self._queue.put(self._STOP)

    def take(self) -> list[T] | None:
        """The next batch (blocks for its first item); None once closed and everything before was taken."""
        limits = self.limits
        if self._closed:
            return None
        first = self._queue.get()
        if first is self._STOP:
            self._closed = True
            return None
        batch: list[T] = [first]  # type: ignore[list-item]  # anything but the sentinel is a T
        total = limits.weight(batch[0])
        linger_until = time.monotonic() + limits.linger_s
        while not limits.full(len(batch), total):
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = linger_until - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is self._STOP:
                self._closed = True  # finish this batch, then stop
                break
            batch.append(item)  # type: ignore[arg-type]
            total += limits.weight(item)  # type: ignore[arg-type]
        return batch


Outcome = list[tuple[list[T], R | Exception]]
"""Parts of a batch with what running each gave: the whole batch once, or each item alone after a failure."""


async def isolate(items: list[T], run: Callable[[list[T]], Awaitable[R]]) -> Outcome[T, R]:
    """``run`` the batch; if it raises, run each item alone, so only the culprit gets the error."""
    try:
        return [(items, await run(items))]
    except Exception as exc:
        if len(items) == 1:
            return [(items, exc)]
    out: Outcome[T, R] = []
    for item in items:
        try:
            out.append(([item], await run([item])))
        except Exception as exc:
            out.append(([item], exc))
    return out


def isolate_sync(items: list[T], run: Callable[[list[T]], R]) -> Outcome[T, R]:
    """:func:`isolate` for a thread."""
    try:
        return [(items, run(items))]
    except Exception as exc:
        if len(items) == 1:
            return [(items, exc)]
    out: Outcome[T, R] = []
    for item in items:
        try:
            out.append(([item], run([item])))
        except Exception as exc:
            out.append(([item], exc))
    return out
