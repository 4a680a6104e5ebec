"""A userspace TCP link impairment: latency and loss on one service's link where the kernel has no ``tc netem``.

``LinkProxy`` listens on one address and forwards every connection to the service behind it, in a background
thread (asyncio). Clients that should go over the impaired link connect to the proxy instead of the service.

Modes:

* ``pass``: forward as is.
* ``impair(delay_s, loss)``: every chunk read on either side is delivered ``delay_s`` later, in order. A chunk is
  "lost" with probability ``loss``: TCP would retransmit it after its retransmission timeout (at least 200 ms on
  Linux), so a lost chunk is delivered ``delay_s + rto_s`` later, holding back what follows it. This is a stand-in
  for ``tc qdisc ... netem delay 200ms loss 5%``: the timing an application sees is that of a lossy, slow link,
  but the kernel's congestion control is not exercised. Use real netem where the kernel has ``sch_netem``.
* ``drop``: nothing is forwarded any more (connections stay open and hang, new ones are accepted and hang): a
  partition as the client sees it. Partitions in the tests cut veth links instead (``netlab.NetLab.cut``), which
  also stops keepalives from being answered; this mode is for links that only exist through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self


@dataclass(frozen=True)
class Impairment:
    delay_s: float = 0.0
    loss: float = 0.0
    rto_s: float = 0.2
    drop: bool = False


PASS = Impairment()


class LinkProxy:
    def __init__(
        self, *, listen: tuple[str, int], upstream: tuple[str, int], sock: socket.socket | None = None, seed: int = 0
    ) -> None:
        self.listen = listen
        self.upstream = upstream
        self.impairment = PASS
        self._sock = sock
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="link-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.chunks = 0
        self.lost = 0

    @property
    def address(self) -> tuple[str, int]:
        return self.listen

    def set(self, impairment: Impairment) -> None:
        """Change the link's behaviour from now on (chunks already queued keep their delivery time)."""
        self.impairment = impairment
        self._loop.call_soon_threadsafe(self._flowing.clear if impairment.drop else self._flowing.set)

    def start(self) -> Self:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        future.result(timeout=10)
        return self

    async def _serve(self) -> None:
        if self._sock is not None:
            self._server = await asyncio.start_server(self._handle, sock=self._sock)
        else:
            self._server = await asyncio.start_server(self._handle, *self.listen, reuse_address=True)
            self.listen = self._server.sockets[0].getsockname()[:2]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(queue, dst))
        last_due = 0.0
        try:
            while True:
                await self._flowing.wait()  # partition: stop reading (the peer's data waits in its buffers)
                data = await src.read(65536)
                if not data:
                    break
                imp = self.impairment
                self.chunks += 1
                due = time.monotonic() + imp.delay_s
                if imp.loss and self._rng.random() < imp.loss:
                    self.lost += 1
                    due += imp.rto_s
                last_due = max(last_due, due)  # in order, as TCP delivers
                await queue.put((last_due, data))
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put((0.0, b""))
            with contextlib.suppress(BaseException):
                await sender

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                await self._flowing.wait()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
