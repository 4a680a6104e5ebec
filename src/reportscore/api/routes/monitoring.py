"""``GET /metrics`` (Prometheus), ``GET /dashboard`` (the live page) and ``GET /dashboard/data`` (its JSON)."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool

from reportscore.api.schemas.monitoring import DashboardData
from reportscore.api.schemas.shadow import ShadowPanel as ShadowPanelOut
from reportscore.api.schemas.tasks import ErrorBody
from reportscore.monitoring.service import Monitoring
from reportscore.shadow.panel import ShadowPanel

STATIC_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "static"

router = APIRouter(tags=["monitoring"])


def _monitoring(request: Request) -> Monitoring:
    monitoring: Monitoring = request.app.state.monitoring
    return monitoring


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def _assets() -> dict[str, _Asset]:
    """The page's files, read once: only what ships in ``monitoring/static`` can be served."""
    assets: dict[str, _Asset] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".html", ".js", ".css", ""):
            body = path.read_bytes()
            media_type = mimetypes.guess_type(path.name)[0] or "text/plain"
            if media_type.startswith("text/") or media_type.endswith("javascript"):
                media_type += "; charset=utf-8"
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            assets[path.relative_to(STATIC_DIR).as_posix()] = _Asset(body, media_type, etag)
    return assets


def _serve(request: Request, name: str) -> Response:
    asset = _assets().get(name)
    if asset is None:
        return JSONResponse({"detail": f"no dashboard asset {name}"}, status_code=404)
    # Revalidated on every load (a 304 costs nothing), so an upgraded service never runs a stale script.
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


METRICS_EXAMPLE = """\
# HELP reportscore_jobs_finished_total Queued jobs (POST /predict, /submit) that reached a final status …
# TYPE reportscore_jobs_finished_total counter
reportscore_jobs_finished_total{status="SUCCESS"} 1234.0
"""


@router.get(
    "/metrics",
    summary="Prometheus metrics of this command's processes",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format (OpenMetrics when the scraper asks for it). Every metric is "
            "listed in docs/metrics.md.",
            "content": {"text/plain": {"example": METRICS_EXAMPLE}},
        }
    },
)
async def metrics(request: Request) -> Response:
    monitoring = _monitoring(request)
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    body = await run_in_threadpool(encode, monitoring.registry)
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


@router.get(
    "/dashboard",
    summary="The live dashboard page",
    response_class=Response,
    responses={
        200: {"description": "An HTML page; it reads GET /dashboard/data every 2 s.", "content": {"text/html": {}}}
    },
)
async def dashboard_page(request: Request) -> Response:
    return _serve(request, "dashboard.html")


@router.get(
    "/dashboard/data",
    summary="What the dashboard page draws: throughput, latency, queue, scores, errors, the serving model",
    response_model=DashboardData,
)
async def dashboard_data(request: Request) -> Any:
    monitoring = _monitoring(request)
    data = await run_in_threadpool(monitoring.dashboard_data)
    return data


@router.get(
    "/dashboard/shadows",
    summary="The dashboard's shadow panel: each running shadow against the champion (cached for a minute)",
    response_model=ShadowPanelOut,
)
async def dashboard_shadows(request: Request) -> Any:
    panel: ShadowPanel | None = getattr(request.app.state, "shadow_panel", None)
    if panel is None:
        state = request.app.state.rs
        panel = request.app.state.shadow_panel = ShadowPanel(db=state.db, settings=state.settings)
    return await run_in_threadpool(panel.summary)


@router.get(
    "/dashboard/static/{name:path}",
    summary="A file of the dashboard page (its script, styles and the vendored chart library)",
    include_in_schema=False,
    responses={404: {"model": ErrorBody}},
)
async def dashboard_asset(request: Request, name: str) -> Response:
    return _serve(request, name)
