"""Job-finished notifications for long-polls: a waiter subscribes before it reads, so no finish is missed.

In distributed mode a notification is one Redis pub/sub message per finished batch: the job ids, each followed by
a comma, then a newline and (optionally) JSON with what the worker committed for the jobs without a callback, by
job id: their owner and the task as ``GET /task`` shows it. An API process with a long-poll waiting on one of those
jobs puts it in its task cache (owner-checked, like the embedded runner does) before waking it, so the woken
long-poll answers without reading the store. Ids not in the JSON (or a message without it) are read from the
store as before; an older reader that splits the whole message on commas still finds every id.

The results of jobs this process accepted (a pending hint in its task cache) are cached too, even with nobody
waiting yet: the client's long-poll usually comes next, and then answers without a read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson

from reportscore.jobs.views import TaskView, from_wire, to_wire

if TYPE_CHECKING:
    from reportscore.jobs.cache import TaskCache

log = logging.getLogger(__name__)

MAX_REPORTS_PER_NOTIFICATION = 10_000
"""Results of more reports than this in one batch are not sent in its notification (the API reads the store)."""


class LocalNotifier:
    """In-process notifier: wakes long-poll waiters of this process. ``notify`` must be called on the event loop.

    ``reliable`` says whether every finish reaches ``notify`` (embedded mode; or distributed while the Redis
    subscription is up). When it is not, waiters re-read the database periodically instead of trusting the wake-up.
    """

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}
        self.reliable_source: RedisSubscriber | None = None

    @property
    def reliable(self) -> bool:
        return self.reliable_source is None or self.reliable_source.connected

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._events.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._events.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._events[job_id]

    def notify(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            for event in self._events.get(job_id, ()):
                event.set()

    def has_waiters(self, job_id: str) -> bool:
        return job_id in self._events

    def waiting(self) -> int:
        return sum(len(v) for v in self._events.values())


def done_channel(prefix: str) -> str:
    return f"{prefix}:jobs-done"


def encode_done(
    job_ids: list[str], views: Mapping[str, TaskView] | None = None, owners: Mapping[str, str] | None = None
) -> bytes:
    """A notification: the ids, and the results of the jobs in ``owners`` (those without a callback)."""
    head = "".join(f"{job_id}," for job_id in job_ids).encode()
    if not views or not owners:
        return head
    results: dict[str, Any] = {}
    budget = MAX_REPORTS_PER_NOTIFICATION
    for job_id, owner in owners.items():
        view = views.get(job_id)
        if view is None or not view.done or view.callback is not None:
            continue
        budget -= 1 + (len(view.reports) if view.reports else 0)
        if budget < 0:
            break
        results[job_id] = to_wire(view, owner)
    if not results:
        return head
    return head + b"\n" + orjson.dumps(results)


def decode_done(message: bytes) -> tuple[list[str], bytes]:
    """The job ids of a notification and its (still encoded) results."""
    head, _, results = message.partition(b"\n")
    return [job_id for job_id in head.decode().split(",") if job_id], results


def decode_results(results: bytes, wanted: Iterable[str]) -> list[tuple[str, TaskView]]:
    """(owner, view) of the ``wanted`` jobs found in a notification's results."""
    found = orjson.loads(results)
    out: list[tuple[str, TaskView]] = []
    for job_id in wanted:
        wire = found.get(job_id)
        if wire is not None:
            out.append(from_wire(job_id, wire))
    return out


class RedisPublisher:
    """Worker side of distributed notifications: announce finished job ids on a Redis pub/sub channel."""

    def __init__(self, url: str, *, prefix: str, tls: dict[str, Any] | None = None) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, **(tls or {}))
        self._channel = done_channel(prefix)

    def publish(
        self,
        job_ids: Iterable[str],
        *,
        views: Mapping[str, TaskView] | None = None,
        owners: Mapping[str, str] | None = None,
    ) -> None:
        """Announce ``job_ids`` finished, with the committed results in ``views`` of the jobs in ``owners``."""
        import redis

        ids = list(job_ids)
        if not ids:
            return
        try:
            self._client.publish(self._channel, encode_done(ids, views, owners))
        except redis.RedisError:
            # Long-polls fall back to re-reading the database while notifications are down.
            log.warning("could not publish job notifications", exc_info=True)

    def close(self) -> None:
        self._client.close()


class RedisSubscriber:
    """API side: one subscription per process that wakes local long-poll waiters.

    ``connected`` is False while Redis is unreachable; waiters then re-read the database once a second instead.
    ``epoch`` counts successful (re)subscriptions: announcements published while it was down are lost, so a pending
    hint recorded under an earlier epoch is not trusted.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        local: LocalNotifier,
        tls: dict[str, Any] | None = None,
        cache: TaskCache | None = None,
    ) -> None:
        self._url = url
        self._cache = cache
        self._tls = tls or {}
        self._channel = done_channel(prefix)
        self._local = local
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.epoch = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        while True:
            client = aioredis.Redis.from_url(self._url, socket_connect_timeout=1.0, **self._tls)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self.epoch += 1
                    self.connected = True
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            self.on_message(data if isinstance(data, bytes) else str(data).encode())
            except (RedisError, OSError):
                self.connected = False
                await asyncio.sleep(1.0)
            finally:
                self.connected = False
                await client.aclose()

    def on_message(self, message: bytes) -> None:
        """Drop the announced jobs' pending hints, cache the announced results of the jobs a local long-poll waits
        for or that were accepted here (hinted), then wake the waiters."""
        job_ids, results = decode_done(message)
        if self._cache is not None:
            hinted = self._cache.drop_hints(job_ids)
            if results:
                wanted = [job_id for job_id in job_ids if job_id in hinted or self._local.has_waiters(job_id)]
                if wanted:
                    try:
                        for owner, view in decode_results(results, wanted):
                            self._cache.remember(view, owner=owner)
                    except (ValueError, KeyError, TypeError):  # then the woken waiters read the store
                        log.warning("unreadable results in a job notification", exc_info=True)
        self._local.notify(job_ids)

    def live_epoch(self) -> int | None:
        """The current subscription's epoch; None while disconnected (announcements may be missed)."""
        return self.epoch if self.connected else None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
