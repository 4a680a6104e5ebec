"""Job-finished notifications for long-polls: a waiter subscribes before it reads, so no finish is missed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


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

    def waiting(self) -> int:
        return sum(len(v) for v in self._events.values())


def done_channel(prefix: str) -> str:
    return f"{prefix}:jobs-done"


class RedisPublisher:
    """Worker side of distributed notifications: announce finished job ids on a Redis pub/sub channel."""

    def __init__(self, url: str, *, prefix: str, tls: dict[str, Any] | None = None) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, **(tls or {}))
        self._channel = done_channel(prefix)

    def publish(self, job_ids: Iterable[str]) -> None:
        import redis

        ids = list(job_ids)
        if not ids:
            return
        try:
            self._client.publish(self._channel, ",".join(ids))
        except redis.RedisError:
            # Long-polls fall back to re-reading the database while notifications are down.
            log.warning("could not publish job notifications", exc_info=True)

    def close(self) -> None:
        self._client.close()


class RedisSubscriber:
    """API side: one subscription per process that wakes local long-poll waiters.

    ``connected`` is False while Redis is unreachable; waiters then re-read the database once a second instead.
    """

    def __init__(self, url: str, *, prefix: str, local: LocalNotifier, tls: dict[str, Any] | None = None) -> None:
        self._url = url
        self._tls = tls or {}
        self._channel = done_channel(prefix)
        self._local = local
        self._task: asyncio.Task[None] | None = None
        self.connected = False

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
                    self.connected = True
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            text = data.decode() if isinstance(data, bytes) else str(data)
                            self._local.notify(text.split(","))
            except (RedisError, OSError):
                self.connected = False
                await asyncio.sleep(1.0)
            finally:
                self.connected = False
                await client.aclose()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
