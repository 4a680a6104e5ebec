"""The hot routes' common case without the router and dependency solving: an ASGI layer right in front of the
router, inside the app's whole middleware stack.

``POST /predict``, ``/submit``, ``/score`` and ``GET /task/{id}`` carry nearly all the traffic. Through the router
each request pays for dependency solving, decodes the body with ``json.loads`` and then validates the Python
objects. This layer answers the common case of those routes directly: the same key check
(:class:`~reportscore.api.auth.Authenticator`), the same pydantic model validating the raw bytes in one call
(``TypeAdapter.validate_json``), the same jobs service (:class:`~reportscore.jobs.service.JobsService`).

It owns no cross-cutting layer: the access log, the HTTP metrics, the body-size limit, key checks before the body
and the error mapping (503 while the store is down, a generic 500) are the app's middleware and exception
handlers, which run around this layer exactly as around the router; a middleware added to the app sees every
request, answered here or not.

Anything else goes to the router unchanged, so every error keeps its one implementation: a missing or refused
key, a body that is not JSON or does not validate, an ``Idempotency-Key``, the object form with a callback, an
unusual query string. A request handed over after its body was read gets that body replayed; a principal already
authorized rides along in the request state, so a rate-limited key is not charged twice. A test runs the same
requests with the fast path on and off and compares the answers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from fastapi import HTTPException
from pydantic import Field, TypeAdapter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reportscore.api.auth import API_KEY_HEADER, PRINCIPAL_STATE, Authenticator, Principal
from reportscore.api.deps import AppState, is_json_media_type
from reportscore.api.routes.tasks import dump_reports
from reportscore.api.schemas.reports import ReportIn
from reportscore.jobs.service import Answer, task_answer
from reportscore.settings import Settings

_KEY_HEADER: Final = API_KEY_HEADER.lower().encode()
_TASK_PREFIX: Final = "/task/"
_POST_ROUTES: Final = frozenset({"/predict", "/submit", "/score"})
_TASK_ROUTE: Final = "/task/{task_id}"


class _Fallback(Exception):
    """Not the common case: the router answers (with the body read so far replayed)."""


class FastPath:
    """ASGI layer around the router: answers the hot routes' common case, hands everything else to the router."""

    def __init__(self, app: ASGIApp, *, settings: Settings, routes: dict[str, Any]) -> None:
        self.app = app
        self._routes = routes
        """Route objects by path template, put in the scope as the router would (the access log's label)."""
        self._reports = TypeAdapter(
            Annotated[list[ReportIn], Field(min_length=1, max_length=settings.max_reports_per_request)]
        )
        self.answered = 0
        """Requests answered here (the rest went to the router)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            receive_next = await self.handle(scope, receive, send)
            if receive_next is None:
                return
            receive = receive_next
        await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """None when answered here, else the ``receive`` the router must use (the original one, or one that
        replays a body already read)."""
        method = scope["method"]
        path: str = scope["path"]
        if method == "POST" and path in _POST_ROUTES:
            route = path
        elif method == "GET" and path.startswith(_TASK_PREFIX):
            route = _TASK_ROUTE
        else:
            return receive
        app_state = scope["app"].state
        state: AppState | None = getattr(app_state, "rs", None)
        authenticator: Authenticator | None = getattr(app_state, "auth", None)
        if state is None or authenticator is None or not state.ready:
            return receive
        request_state: dict[str, Any] = scope.setdefault("state", {})
        body: bytes | None = None
        try:
            headers = _headers(scope)
            if route == _TASK_ROUTE:
                task_id = path[len(_TASK_PREFIX) :]
                wait = _wait_query(scope["query_string"])
                if not _is_uuid(task_id):
                    raise _Fallback
                principal = await self._authorize(authenticator, headers, "read", request_state)
                view = await state.jobs.read(owner=principal.tenant, task_id=task_id, wait=wait)
                answer = task_answer(task_id, view)
            else:
                persist = True
                if route == "/score":
                    persist = _persist_query(scope["query_string"])
                elif scope["query_string"] or b"idempotency-key" in headers:
                    raise _Fallback
                if not is_json_media_type(headers.get(b"content-type", b"").decode("latin-1")):
                    raise _Fallback
                declared = headers.get(b"content-length")
                if declared is None or not declared.isdigit():
                    raise _Fallback
                principal = await self._authorize(authenticator, headers, "submit", request_state)
                body = await self._read_body(receive, int(declared))
                try:
                    reports = self._reports.validate_json(body)
                except ValueError:  # ValidationError included: the router reports it in FastAPI's shape
                    raise _Fallback from None
                payload = dump_reports(reports)
                if route == "/score":
                    answer = await state.jobs.score(
                        owner=principal.tenant, reports=payload, persist=persist, received_at=datetime.now(UTC)
                    )
                else:
                    answer = await state.jobs.submit(owner=principal.tenant, reports=payload, idempotency_key=None)
        except _BodyFallback as exc:
            return _replay(exc.body, receive, more=exc.more)
        except _Fallback:
            return receive if body is None else _replay(body, receive, more=False)
        self.answered += 1
        scope["route"] = self._routes.get(route)
        await _send(send, answer, request_state)
        return None

    async def _authorize(
        self, authenticator: Authenticator, headers: dict[bytes, bytes], scope_name: str, request_state: dict[str, Any]
    ) -> Principal:
        raw = headers.get(_KEY_HEADER)
        presented = raw.decode("latin-1") if raw is not None else None
        try:
            principal = await authenticator.authorize(presented, scope_name)
        except HTTPException:
            raise _Fallback from None  # 401/403/429 in the router's words (a refused check charged nothing)
        request_state["tenant"] = principal.tenant
        if principal.key_id is not None:
            request_state["key_id"] = principal.key_id
        request_state[PRINCIPAL_STATE] = (scope_name, principal)
        return principal

    async def _read_body(self, receive: Receive, declared: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Fallback  # the client left: the app sees the same disconnect
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
            if size > declared:
                body = b"".join(chunks)
                raise _BodyFallback(body, more=message.get("more_body", False))
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _BodyFallback(_Fallback):
    def __init__(self, body: bytes, *, more: bool) -> None:
        super().__init__()
        self.body = body
        self.more = more


def _headers(scope: Scope) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in headers:
            raise _Fallback  # a repeated header: the app decides which one counts
        headers[name] = value
    return headers


def _is_uuid(task_id: str) -> bool:
    if len(task_id) != 36:
        return False
    try:
        uuid.UUID(task_id)
    except ValueError:
        return False
    return True


def _wait_query(query: bytes) -> float:
    if not query:
        return 0.0
    name, sep, value = query.partition(b"=")
    if name != b"wait" or not sep or not value or b"&" in value:
        raise _Fallback
    try:
        wait = float(value)
    except ValueError:
        raise _Fallback from None
    if not wait >= 0 or wait == float("inf"):
        raise _Fallback
    return wait


def _persist_query(query: bytes) -> bool:
    if not query or query == b"persist=true":
        return True
    if query == b"persist=false":
        return False
    raise _Fallback


def _replay(body: bytes, receive: Receive, *, more: bool) -> Receive:
    """A ``receive`` that first hands back the body already read, then the connection's own messages."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


async def _send(send: Send, answer: Answer, request_state: dict[str, Any]) -> None:
    if answer.task_id is not None:
        request_state["task_id"] = answer.task_id
    content = orjson.dumps(answer.body)
    raw = [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json")]
    if answer.headers:
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items())
    await send({"type": "http.response.start", "status": answer.status, "headers": raw})
    await send({"type": "http.response.body", "body": content})
