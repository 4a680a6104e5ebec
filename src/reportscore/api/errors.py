"""Error responses: FastAPI's validation shape made JSON-safe, store outages as 503 and anything unexpected as a
generic 500 (never a traceback, SQL or exception text in the body), and an ``Allow`` header that lists every method
of the resource on a 405."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from reportscore.scoring.formats.base import ModelUnavailableError

log = logging.getLogger(__name__)


_JSON_ERRORS: dict[type[BaseException], str] = {
    UnicodeDecodeError: "the body is not valid UTF-8",
    RecursionError: "nested too deeply",
}

ECHO_MAX_CHARS = 256
"""A rejected string is echoed back (in ``input``) cut to this many characters, so a 10 MB field costs no 10 MB
answer."""

ECHO_MAX_ITEMS = 20
"""A rejected list longer than this is echoed back as a count only."""


def _printable(text: str) -> str:
    """Cut to ``ECHO_MAX_CHARS``; a lone surrogate (JSON allows ``"\\ud800"``, UTF-8 cannot encode it) becomes "?"."""
    if len(text) > ECHO_MAX_CHARS:
        text = text[:ECHO_MAX_CHARS] + f"… ({len(text)} characters)"
    return text.encode("utf-8", "replace").decode("utf-8")


def store_unavailable_response() -> JSONResponse:
    """The answer while the store is down or broken (also sent by middleware outside the exception handlers)."""
    return JSONResponse(
        {"detail": "the store is unavailable; retry shortly"}, status_code=503, headers={"Retry-After": "1"}
    )


def model_unavailable_response() -> JSONResponse:
    """The answer while a remote model's endpoint does not answer (its jobs are retried meanwhile)."""
    return JSONResponse(
        {"detail": "the model is unavailable; retry shortly"}, status_code=503, headers={"Retry-After": "1"}
    )


def _json_safe(value: Any) -> Any:
    """NaN and Infinity are not JSON: echo them back as strings ("NaN", "inf") so the 422 itself is valid JSON.
    Long strings and lists are cut (see ``ECHO_MAX_CHARS``, ``ECHO_MAX_ITEMS``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value) if not math.isnan(value) else "NaN"
    if isinstance(value, str):
        return _printable(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, dict):
        return {_printable(k) if isinstance(k, str) else k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if len(value) > ECHO_MAX_ITEMS:
            return f"a list of {len(value)} items"
        return [_json_safe(v) for v in value]
    return value


def allowed_methods(request: Request) -> list[str]:
    """Every method of the resource at this path: the methods of all routes with the same path template as the first
    route that matches it (Starlette's own 405 names only that one route's methods)."""
    routes = list(iter_route_contexts(request.app.router.routes))
    template = next((r.path for r in routes if r.matches(request.scope)[0] is not Match.NONE), None)
    if template is None:
        return []
    return sorted({m for r in routes if r.path == template for m in r.methods or ()})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
            # FastAPI answers 400 when json.loads fails with something other than a JSONDecodeError: a body that is
            # not UTF-8, nested too deeply, or an integer literal past Python's digit limit. All are malformed JSON,
            # answered like any other (422, json_invalid).
            return JSONResponse(
                {
                    "detail": [
                        {
                            "type": "json_invalid",
                            "loc": ["body"],
                            "msg": "JSON decode error",
                            "input": {},
                            "ctx": {"error": _JSON_ERRORS.get(type(exc.__cause__), "invalid JSON")},
                        }
                    ]
                },
                status_code=422,
            )
        if exc.status_code == 405:
            methods = allowed_methods(request)
            if methods:
                exc.headers = {**(exc.headers or {}), "Allow": ", ".join(methods)}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        return JSONResponse({"detail": [_json_safe(error) for error in errors]}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log (Starlette re-raises after this answer, so the server logs it too);
        # the client only learns that it was not its fault.
        log.error("unhandled error", extra={"path": request.url.path, "error": type(exc).__name__}, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.exception_handler(ModelUnavailableError)
    async def model_unavailable(request: Request, exc: ModelUnavailableError) -> JSONResponse:
        # A remote model's endpoint is down: like the store, a 503 the client retries, not an internal error.
        log.error("model unavailable", extra={"path": request.url.path, "error": str(exc)[:500]})
        return model_unavailable_response()

    @app.exception_handler(OperationalError)
    async def store_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("store unavailable", extra={"path": request.url.path, "error": type(exc.orig).__name__})
        return store_unavailable_response()
