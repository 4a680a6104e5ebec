"""The hot routes' common case without the framework's per-request machinery.

``POST /predict``, ``/submit``, ``/score`` and ``GET /task/{id}`` carry nearly all the traffic. Through FastAPI each
request walks a dozen middleware layers, the router and dependency solving, decodes the body with ``json.loads`` and
then validates the Python objects: on one core that machinery, not storage or the model, set the service's ceiling
(benchmarks/RESULTS.md). Here the common case of those routes is answered directly: the same key check
(:class:`~reportscore.api.auth.Authenticator`), the same body limit, the same pydantic model validating the raw
bytes in one call (``TypeAdapter.validate_json``), the same route logic (:func:`submit_answer`, :func:`score_answer`,
:func:`task_answer`), the same access-log line and HTTP metrics.

Anything else goes to the FastAPI app unchanged, so every error keeps its one implementation: a missing or refused
key, a body that is not JSON or does not validate, an ``Idempotency-Key``, the object form with a callback, an
unusual query string. A request handed over after its body was read gets that body replayed; a principal already
authorized rides along in the request state, so a rate-limited key is not charged twice. A test runs the same
requests with the fast path on and off and compares the answers.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from fastapi import HTTPException
from pydantic import Field, TypeAdapter
from sqlalchemy.exc import OperationalError
from starlette.types import Message, Receive, Scope, Send

from reportscore.api.auth import API_KEY_HEADER, PRINCIPAL_STATE, Authenticator, Principal
from reportscore.api.deps import AppState, is_json_media_type
from reportscore.api.errors import model_unavailable_response, store_unavailable_response
from reportscore.api.middleware import record_request
from reportscore.api.routes.tasks import dump_reports, score_answer, submit_answer, task_answer, task_view
from reportscore.api.schemas.reports import ReportIn
from reportscore.scoring.formats.base import ModelUnavailableError
from reportscore.settings import Settings

log = logging.getLogger(__name__)

_KEY_HEADER: Final = API_KEY_HEADER.lower().encode()
_TASK_PREFIX: Final = "/task/"
_POST_ROUTES: Final = frozenset({"/predict", "/submit", "/score"})
_TASK_ROUTE: Final = "/task/{task_id}"


class _Fallback(Exception):
    """Not the common case: the FastAPI app answers (with the body read so far replayed)."""


class FastPath:
    """Answers the hot routes' common case; ``handle`` returns None when it answered, else the ``receive`` the
    FastAPI app must use (the original one, or one that replays a body already read)."""

    def __init__(self, settings: Settings) -> None:
        self._max_body = settings.max_body_bytes
        self._reports = TypeAdapter(
            Annotated[list[ReportIn], Field(min_length=1, max_length=settings.max_reports_per_request)]
        )
        self.answered = 0
        """Requests answered here (the rest went to the FastAPI app)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, app_state: Any) -> Receive | None:
        method = scope["method"]
        path: str = scope["path"]
        if method == "POST" and path in _POST_ROUTES:
            route = path
        elif method == "GET" and path.startswith(_TASK_PREFIX):
            route = _TASK_ROUTE
        else:
            return receive
        state: AppState | None = getattr(app_state, "rs", None)
        authenticator: Authenticator | None = getattr(app_state, "auth", None)
        if state is None or authenticator is None or not state.ready:
            return receive
        t0 = time.perf_counter()
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
                answer = task_answer(task_id, await task_view(state, principal.tenant, task_id, wait))
            else:
                persist = True
                if route == "/score":
                    persist = _persist_query(scope["query_string"])
                elif scope["query_string"] or b"idempotency-key" in headers:
                    raise _Fallback
                if not is_json_media_type(headers.get(b"content-type", b"").decode("latin-1")):
                    raise _Fallback
                declared = headers.get(b"content-length")
                if declared is None or not declared.isdigit() or int(declared) > self._max_body:
                    raise _Fallback
                principal = await self._authorize(authenticator, headers, "submit", request_state)
                body = await self._read_body(receive, int(declared))
                try:
                    reports = self._reports.validate_json(body)
                except ValueError:  # ValidationError included: the app reports it in FastAPI's shape
                    raise _Fallback from None
                payload = dump_reports(reports)
                if route == "/score":
                    answer = await score_answer(state, principal, payload, persist, datetime.now(UTC))
                else:
                    answer = await submit_answer(state, principal, payload, None)
        except _BodyFallback as exc:
            return _replay(exc.body, receive, more=exc.more)
        except _Fallback:
            return receive if body is None else _replay(body, receive, more=False)
        except OperationalError as exc:
            log.error("store unavailable", extra={"path": path, "error": type(exc.orig).__name__})
            await store_unavailable_response()(scope, receive, send)
            record_request(scope, route, 503, time.perf_counter() - t0)
            return None
        except ModelUnavailableError as exc:
            log.error("model unavailable", extra={"path": path, "error": str(exc)[:500]})
            await model_unavailable_response()(scope, receive, send)
            record_request(scope, route, 503, time.perf_counter() - t0)
            return None
        except Exception as exc:
            log.error("unhandled error", extra={"path": path, "error": type(exc).__name__}, exc_info=exc)
            await _send(send, 500, {"detail": "internal error"}, None)
            record_request(scope, route, 500, time.perf_counter() - t0)
            return None
        self.answered += 1
        if answer.task_id is not None:
            request_state["task_id"] = answer.task_id
        await _send(send, answer.status, answer.body, answer.headers)
        record_request(scope, route, answer.status, time.perf_counter() - t0)
        return None

    async def _authorize(
        self, authenticator: Authenticator, headers: dict[bytes, bytes], scope_name: str, request_state: dict[str, Any]
    ) -> Principal:
        raw = headers.get(_KEY_HEADER)
        presented = raw.decode("latin-1") if raw is not None else None
        try:
            principal = await authenticator.authorize(presented, scope_name)
        except HTTPException:
            raise _Fallback from None  # 401/403/429 in the app's words (a refused check charged nothing)
        except OperationalError:
            raise _Fallback from None  # the app answers its 503
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
            if size > self._max_body or size > declared:
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


async def _send(send: Send, status: int, body: Any, headers: dict[str, str] | None) -> None:
    content = orjson.dumps(body)
    raw = [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json")]
    if headers:
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})
