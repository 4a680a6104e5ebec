"""Who is calling: the principal (tenant, key, scopes) every protected route depends on.

Routes declare the scope they need with ``Principal`` dependencies built by :func:`requires`::

    async def read_task(principal: Annotated[Principal, requires("read")], ...) -> ...

and read or write only rows whose owner is ``principal.tenant``. The key travels in the ``X-API-Key`` header
(the OpenAPI security scheme ``ApiKey``). :data:`ROUTE_SCOPES` is the one table of which route needs which scope:
docs/security.md is generated from it and a test checks every route of the app against it.

While no key was ever created (the api_keys table is empty), a process bound to loopback (or started with
``--insecure``) serves everyone as the anonymous tenant with every scope; once any key was created every protected
route needs one, for good: revoking every key does not reopen the service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeVar

from fastapi import HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.security import APIKeyHeader
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as ASGIScope

from reportscore.api.errors import store_unavailable_response
from reportscore.api.schemas.tasks import ErrorBody
from reportscore.security import keys
from reportscore.security.ratelimit import RateLimiter
from reportscore.settings import Settings
from reportscore.storage.db import Database

Scope = Literal["submit", "read", "feedback", "admin", "metrics"]
SCOPES: Final[tuple[str, ...]] = keys.SCOPES

API_KEY_HEADER: Final = "X-API-Key"
WWW_AUTHENTICATE: Final = f'ApiKey realm="reportscore", header="{API_KEY_HEADER}"'

ANONYMOUS_TENANT: Final = "anonymous"
"""The tenant of every request while no API key was ever created (rows written then keep it as their owner)."""

MONITORING: Final = "metrics"
"""``/metrics`` and ``/dashboard*`` need the ``metrics`` (or ``admin``) scope only when REPORTSCORE_PROTECT_MONITORING
is on; otherwise they are open."""

ROUTE_SCOPES: Final[dict[tuple[str, str], Scope | None]] = {
    ("POST", "/predict"): "submit",
    ("POST", "/submit"): "submit",
    ("POST", "/score"): "submit",
    ("GET", "/task/{task_id}"): "read",
    ("GET", "/reports/queue"): "read",
    ("POST", "/feedback"): "feedback",
    ("GET", "/models"): "admin",
    ("GET", "/models/drift"): "admin",
    ("POST", "/models"): "admin",
    ("POST", "/models/remote"): "admin",
    ("GET", "/models/{version}"): "admin",
    ("POST", "/models/{version}/promote"): "admin",
    ("POST", "/models/{version}/shadow"): "admin",
    ("DELETE", "/models/{version}/shadow"): "admin",
    ("GET", "/models/compare"): "admin",
    ("POST", "/models/rollback"): "admin",
    ("GET", "/models/metrics"): "admin",
    ("GET", "/keys"): "admin",
    ("POST", "/keys"): "admin",
    ("DELETE", "/keys/{prefix}"): "admin",
    ("GET", "/metrics"): MONITORING,
    ("GET", "/dashboard"): MONITORING,
    ("GET", "/dashboard/data"): MONITORING,
    ("GET", "/dashboard/shadows"): MONITORING,
    ("GET", "/dashboard/static/{name:path}"): MONITORING,
    ("GET", "/heartbeat"): None,
    ("GET", "/health/live"): None,
    ("GET", "/health/ready"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("GET", "/openapi.json"): None,
}
"""Every route (method, path template) and the scope it needs; None: open to anyone (probes, API docs)."""

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKey",
    description="An API key from `reportscore keys create` (shown once). Needed once any key was created; "
    "see docs/security.md for the scope each route needs.",
    auto_error=False,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


AUTH_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: {
        "model": ErrorBody,
        "description": f"No valid API key in {API_KEY_HEADER} (needed once any key was created).",
        "headers": {"WWW-Authenticate": {"description": "How to authenticate.", "schema": {"type": "string"}}},
    },
    403: {"model": ErrorBody, "description": "The API key lacks the scope this route needs."},
    429: {
        "model": ErrorBody,
        "description": "The API key's rate limit is exceeded; retry after Retry-After.",
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    },
}
"""The answers of every protected route's key check, declared once on each router that holds such routes."""


OPEN_SERVICE_NOTE: Final = f"""
**Authentication: none needed right now.** This service runs open: it is bound to loopback (or was started with
`--insecure`) and no API key was created yet, so every operation answers without the `{API_KEY_HEADER}` header. Once a
first key is created (`reportscore keys create`), every protected operation needs one, for good, and this document
declares it.
"""


def open_document(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document of a service that runs open: ``document`` without the API-key scheme and without a
    security requirement on any operation (a copy; ``document`` is left as it is)."""
    info = document.get("info", {})
    components = {k: v for k, v in document.get("components", {}).items() if k != "securitySchemes"}
    paths = {
        path: {
            method: {k: v for k, v in operation.items() if k != "security"}
            if isinstance(operation, dict)
            else operation
            for method, operation in operations.items()
        }
        for path, operations in document.get("paths", {}).items()
    }
    opened = {**document, "info": {**info, "description": info.get("description", "") + OPEN_SERVICE_NOTE}}
    opened["paths"] = paths
    if components:
        opened["components"] = components
    else:
        opened.pop("components", None)
    return opened


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    key_id: str | None
    scopes: frozenset[str]


_ANONYMOUS: Final = Principal(tenant=ANONYMOUS_TENANT, key_id=None, scopes=frozenset(SCOPES))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": WWW_AUTHENTICATE})


class Authenticator:
    """Checks a presented key against the store, with each lookup cached for REPORTSCORE_AUTH_CACHE_S."""

    MAX_CACHED = 10_000

    def __init__(self, *, db: Database, settings: Settings, limiter: RateLimiter) -> None:
        self.db = db
        self.limiter = limiter
        self.allow_open = settings.insecure or is_loopback(settings.host)
        self._ttl_s = settings.auth_cache_s
        self._keys: dict[str, tuple[float, keys.StoredKey | None]] = {}
        self._any_key: tuple[float, bool] | None = None
        self._reads: dict[str, asyncio.Future[Any]] = {}

    async def _once(self, name: str, read: Callable[[], Awaitable[T]]) -> T:
        """One store read at a time per ``name``: callers arriving while it runs share its result (when a cached
        entry expires under load, dozens of requests would otherwise each start the same read)."""
        running = self._reads.get(name)
        if running is None:
            running = self._reads[name] = asyncio.ensure_future(read())

            def done(future: asyncio.Future[Any]) -> None:
                self._reads.pop(name, None)
                if not future.cancelled():
                    future.exception()  # retrieved: every waiter may have been cancelled meanwhile

            running.add_done_callback(done)
        result: T = await asyncio.shield(running)
        return result

    async def keys_exist(self) -> bool:
        """Whether any key was ever created (revoked ones count): from then on every protected route needs a key.
        Checked at most once per REPORTSCORE_AUTH_CACHE_S until it is true, then never again (it cannot go back)."""
        now = time.monotonic()
        if self._any_key is None or (not self._any_key[1] and now - self._any_key[0] >= self._ttl_s):
            try:
                exists = await self._once("any", lambda: run_in_threadpool(keys.any_key_created, db=self.db))
            except OperationalError:
                if self._any_key is None:
                    raise  # nothing known yet: the caller answers 503
                log.warning("store unavailable: using the last known key state")
                return self._any_key[1]
            self._any_key = (now, exists)
        return self._any_key[1]

    async def is_open(self) -> bool:
        """Whether this process serves everyone without a key right now (allowed to, and no key was ever created)."""
        return self.allow_open and not await self.keys_exist()

    async def _stored(self, prefix: str) -> keys.StoredKey | None:
        now = time.monotonic()
        cached = self._keys.get(prefix)
        if cached is None or now - cached[0] >= self._ttl_s:
            try:
                stored = await self._once(prefix, lambda: run_in_threadpool(keys.lookup, db=self.db, prefix=prefix))
            except OperationalError:
                if cached is None:
                    raise  # nothing known yet: the caller answers 503
                log.warning("store unavailable: using the last known state of an API key")
                return cached[1]
            if len(self._keys) >= self.MAX_CACHED:
                self._keys.clear()
            cached = self._keys[prefix] = (now, stored)
        return cached[1]

    async def authenticate(self, presented: str | None) -> keys.StoredKey | None:
        """The presented key's record (None: the open service's anonymous caller), or 401."""
        if not presented:
            if not await self.keys_exist():
                if self.allow_open:
                    return None
                raise _unauthorized(
                    "no API key exists yet and this service is not bound to loopback: "
                    "create one with `reportscore keys create --tenant <tenant> --name <name> --scopes ...`"
                )
            raise _unauthorized(f"missing API key: send it in the {API_KEY_HEADER} header")
        # A key that is sent is always checked, even while the service is open: a revoked key never works.
        prefix = keys.parse_prefix(presented)
        stored = await self._stored(prefix) if prefix is not None else None
        if stored is None or stored.revoked or not keys.matches(presented, stored.key_hash):
            raise _unauthorized("invalid or revoked API key")
        return stored

    async def authorize(self, presented: str | None, scope: str) -> Principal:
        """The caller's principal, or 401 (no valid key), 403 (key lacks ``scope``), 429 (over its rate)."""
        stored = await self.authenticate(presented)
        if stored is None:
            return _ANONYMOUS
        if scope not in stored.scopes and not (scope == MONITORING and "admin" in stored.scopes):
            raise HTTPException(status_code=403, detail=f"this API key lacks the {scope!r} scope")
        if stored.rate is not None:
            burst = stored.burst or keys.default_burst(stored.rate) or 1
            wait_s = await self.limiter.acquire(stored.prefix, rate=stored.rate, burst=burst)
            if wait_s is not None:
                raise HTTPException(
                    status_code=429,
                    detail=f"rate limit of this API key exceeded ({stored.rate:g}/s, burst {burst})",
                    headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
                )
        return Principal(tenant=stored.tenant, key_id=stored.prefix, scopes=stored.scopes)


class AuthenticateBeforeBody:
    """Pure ASGI middleware: a request with a body to a protected route and no valid key gets its 401 before the
    body is read and parsed, so anonymous callers cannot make the service parse megabytes of JSON.

    Only requests whose method and path match a protected route (by the router's own matching) are checked here;
    anything else goes on to its normal answer (``PUT /heartbeat``: 405, an unknown path: 404, open routes).
    Scopes and rate limits are still checked by the route's :func:`requires` dependency."""

    BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
    MAX_CACHED: Final = 4096

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._protected: list[Any] | None = None
        self._answers: dict[tuple[str, str], bool] = {}

    def _matches_protected_route(self, scope: ASGIScope) -> bool:
        """Whether a protected route matches; remembered per method and path (matching every protected route's
        pattern was a visible share of a small request)."""
        key = (scope["method"], scope["path"])
        answer = self._answers.get(key)
        if answer is None:
            if self._protected is None:  # the routes are complete by the first request
                routes = iter_route_contexts(scope["app"].router.routes)
                self._protected = [r for r in routes if route_scope(r) is not None]
            answer = any(route.matches(scope)[0] is Match.FULL for route in self._protected)
            if len(self._answers) >= self.MAX_CACHED:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in self.BODY_METHODS:
            authenticator: Authenticator | None = getattr(scope["app"].state, "auth", None)
            if authenticator is not None and self._matches_protected_route(scope):
                presented = Headers(scope=scope).get(API_KEY_HEADER)
                try:
                    await authenticator.authenticate(presented)
                except HTTPException as exc:
                    response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
                    await response(scope, receive, send)
                    return
                except OperationalError:  # outside the app's exception handlers: answer their 503 here
                    await store_unavailable_response()(scope, receive, send)
                    return
        await self.app(scope, receive, send)


PRINCIPAL_STATE: Final = "authorized"
"""Request-state key of a principal the fast path (:mod:`reportscore.api.fastpath`) already authorized for a request
it then handed to the router, as ``(scope, principal)``: the key is not checked (nor its rate charged) twice."""


def requires(scope: Scope) -> Any:
    """A dependency that answers the calling principal, once it is known to hold ``scope``."""

    async def principal(request: Request, api_key: Annotated[str | None, Security(api_key_header)] = None) -> Principal:
        authorized = getattr(request.state, PRINCIPAL_STATE, None)
        if authorized is not None and authorized[0] == scope:
            found: Principal = authorized[1]
            return found
        authenticator: Authenticator = request.app.state.auth
        found = await authenticator.authorize(api_key, scope)
        request.state.tenant = found.tenant  # for the access log
        if found.key_id is not None:
            request.state.key_id = found.key_id
        return found

    principal.__name__ = f"requires_{scope}"
    principal.required_scope = scope  # type: ignore[attr-defined]  # read by route_scope()
    return Security(principal)


def route_scope(route: Any) -> str | None:
    """The scope a route's dependencies demand (None: none), found by walking its dependency tree."""
    pending = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while pending:
        dependant = pending.pop()
        scope = getattr(dependant.call, "required_scope", None)
        if scope is not None:
            return str(scope)
        pending.extend(dependant.dependencies)
    return None


def scopes_markdown() -> str:
    """The route → scope table of docs/security.md (a test keeps the docs in sync)."""
    lines = ["| method | path | scope |", "|---|---|---|"]
    for (method, path), scope in ROUTE_SCOPES.items():
        if scope is None:
            needed = "open"
        elif scope == MONITORING:
            needed = "`metrics` or `admin` when `REPORTSCORE_PROTECT_MONITORING=true`; open otherwise"
        else:
            needed = f"`{scope}`"
        lines.append(f"| {method} | `{path}` | {needed} |")
    return "\n".join(lines) + "\n"
