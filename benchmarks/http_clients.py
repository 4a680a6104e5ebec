"""HTTP clients of the load generator: a minimal keep-alive HTTP/1.1 client on asyncio streams (``raw``, the
default: a few microseconds per request) and ``httpx2.AsyncClient`` (``httpx``, to cross-check)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal, Protocol

ClientKind = Literal["raw", "httpx"]
JOB_TIMEOUT_S = 60.0
"""The longest a job (and so one request) may take."""


class HttpClient(Protocol):
    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class _RawConnection:
    __slots__ = ("last_used", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class RawClient:
    """A minimal HTTP/1.1 keep-alive client: one request per connection at a time, up to ``max_connections``
    connections, idle ones reused most-recent-first and dropped before the server's keep-alive timeout (5 s)."""

    IDLE_MAX_S = 3.0

    def __init__(self, base_url: str, max_connections: int) -> None:
        hostport = base_url.removeprefix("http://").rstrip("/")
        host, _, port = hostport.partition(":")
        self._host = host
        self._port = int(port or 80)
        self._host_header = f"Host: {hostport}\r\n".encode()
        self._idle: list[_RawConnection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def _connect(self) -> _RawConnection:
        reader, writer = await asyncio.open_connection(self._host, self._port, limit=1 << 22)
        return _RawConnection(reader, writer)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        async with self._slots:
            conn: _RawConnection | None = None
            now = time.monotonic()
            while self._idle:
                candidate = self._idle.pop()
                if now - candidate.last_used < self.IDLE_MAX_S:
                    conn = candidate
                    break
                candidate.close()
            if conn is None:
                conn = await self._connect()
            try:
                status, data, keep_alive = await self._exchange(conn, method, path, body)
            except BaseException:
                conn.close()
                raise
            if keep_alive:
                conn.last_used = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
            return status, data

    async def _exchange(
        self, conn: _RawConnection, method: str, path: str, body: bytes | None
    ) -> tuple[int, bytes, bool]:
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_header]
        if body is not None:
            head.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        if body is not None:
            head.append(body)
        conn.writer.write(b"".join(head))
        await conn.writer.drain()
        raw_head = await conn.reader.readuntil(b"\r\n\r\n")
        status = int(raw_head[9:12])
        length = -1
        chunked = False
        keep_alive = True
        for line in raw_head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif lname == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
        if chunked:
            parts = []
            while True:
                size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await conn.reader.readuntil(b"\r\n")
                    break
                parts.append(await conn.reader.readexactly(size))
                await conn.reader.readexactly(2)
            data = b"".join(parts)
        elif length >= 0:
            data = await conn.reader.readexactly(length)
        else:
            data = await conn.reader.read()
            keep_alive = False
        return status, data, keep_alive

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class HttpxClient:
    """``httpx2.AsyncClient`` with a pool of ``max_connections`` keep-alive connections."""

    def __init__(self, base_url: str, max_connections: int) -> None:
        import httpx2 as httpx

        self._client = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            timeout=httpx.Timeout(JOB_TIMEOUT_S),
            trust_env=False,
        )

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"} if body is not None else None
        resp = await self._client.request(method, path, content=body, headers=headers)
        return resp.status_code, resp.content

    async def aclose(self) -> None:
        await self._client.aclose()


def make_client(kind: ClientKind, base_url: str, max_connections: int) -> HttpClient:
    if kind == "httpx":
        return HttpxClient(base_url, max_connections)
    return RawClient(base_url, max_connections)
