"""Error responses: FastAPI's validation shape made JSON-safe, and store outages as 503 without internals."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)


def _json_safe(value: Any) -> Any:
    """NaN and Infinity are not JSON: echo them back as strings ("NaN", "inf") so the 422 itself is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value) if not math.isnan(value) else "NaN"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(OperationalError)
    async def store_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("store unavailable", extra={"path": request.url.path, "error": type(exc.orig).__name__})
        return JSONResponse(
            {"detail": "the store is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
