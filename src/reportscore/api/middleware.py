"""Pure ASGI middleware: a request-body size limit enforced while reading, and one access-log line per request."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reportscore.monitoring import metrics

access_log = logging.getLogger("reportscore.access")


class BodySizeLimit:
    """Answer 413 when a body exceeds ``max_bytes``, counting bytes as they arrive (Content-Length is not trusted)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        received = 0
        started = False
        rejected = False

        async def counting_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now and tell the app the client went away, so it stops reading; whatever the app
                    # sends afterwards (FastAPI turns a broken body into a 400) is dropped below.
                    rejected = True
                    if not started:
                        await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _reject(self, send: Send) -> None:
        body = orjson.dumps({"detail": f"request body larger than {self.max_bytes} bytes"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def route_template(scope: Scope) -> str:
    """The route's path template (``/task/{task_id}``), never the raw path, so metric labels stay bounded.

    A request answered before routing (a 413 from ``BodySizeLimit``) is matched here the way the router would.
    """
    route = scope.get("route")
    if route is None:
        for candidate in iter_route_contexts(getattr(scope.get("app"), "routes", ())):
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessLog:
    """One structured log line per HTTP request (method, path, route, status, duration, task id if any), and the
    HTTP metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            record_request(scope, route_template(scope), status, time.perf_counter() - t0)


def record_request(scope: Scope, route: str, status: int, duration_s: float) -> None:
    """The HTTP metrics and the access-log line of one answered request."""
    method = scope["method"]
    metrics.observe_http(method=method, route=route, status=status, seconds=duration_s)
    state: dict[str, Any] = scope.get("state") or {}
    extra: dict[str, Any] = {
        "method": method,
        "path": scope["path"],
        "route": route,
        "status": status,
        "duration_ms": round(duration_s * 1000, 3),
    }
    for name in ("task_id", "tenant", "key_id"):  # set by the routes and the auth dependency
        if name in state:
            extra[name] = state[name]
    access_log.info("request", extra=extra)
