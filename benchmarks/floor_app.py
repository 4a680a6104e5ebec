"""The HTTP floor: a minimal FastAPI app that parses the same JSON with the same pydantic models and answers
constant scores, served by uvicorn with the service's own uvicorn settings, in one process.

Whatever the real service does beyond this (storage, queueing, scoring, logging, middleware) is its overhead over
the floor. Endpoints mirror the service's:

- ``POST /score``: body validated as ``list[ReportIn]`` -> ``200 {"score": [...], "model": {...}}``
- ``POST /predict``: same body -> ``202 {"task_id", "status": "PENDING"}``; the job lives in an in-memory dict
- ``GET /task/{task_id}``: ``200 {"task_id", "status": "SUCCESS", "score": [...]}`` (``?wait=`` accepted, ignored:
  the job is already done), ``404`` for an unknown id
- ``GET /heartbeat``, ``GET /health/ready``

Run: ``python -m benchmarks.floor_app --host 127.0.0.1 --port 8090``.
"""

import argparse
import uuid
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query
from fastapi.responses import JSONResponse

from reportscore.api.schemas.reports import ReportIn
from reportscore.settings import Settings

FLOOR_SCORE = 0.5
FLOOR_MODEL = {"name": "floor", "version": "0"}


def create_floor_app(max_reports: int | None = None) -> FastAPI:
    """The floor app; ``max_reports`` defaults to the service's ``max_reports_per_request``."""
    limit = max_reports if max_reports is not None else Settings().max_reports_per_request
    Reports = Annotated[list[ReportIn], Body(min_length=1, max_length=limit)]  # noqa: N806
    jobs: dict[str, int] = {}
    app = FastAPI(title="reportscore floor", docs_url=None, redoc_url=None)

    @app.post("/score")
    async def score(reports: Reports) -> Any:
        return JSONResponse({"score": [FLOOR_SCORE] * len(reports), "model": FLOOR_MODEL})

    @app.post("/predict", status_code=202)
    async def predict(reports: Reports) -> Any:
        task_id = str(uuid.uuid4())
        jobs[task_id] = len(reports)
        return JSONResponse(
            {"task_id": task_id, "status": "PENDING"}, status_code=202, headers={"Location": f"/task/{task_id}"}
        )

    @app.get("/task/{task_id}")
    async def read_task(task_id: str, wait: Annotated[float, Query(ge=0)] = 0.0) -> Any:
        n = jobs.pop(task_id, None)  # each job is read once by the load generator: keep the dict small
        if n is None:
            return JSONResponse({"detail": f"task {task_id} not found"}, status_code=404)
        return JSONResponse({"task_id": task_id, "status": "SUCCESS", "score": [FLOOR_SCORE] * n})

    @app.get("/heartbeat")
    async def heartbeat() -> Any:
        return {"message": "Service Ok"}

    @app.get("/health/ready")
    async def ready() -> Any:
        return {"status": "ready"}

    return app


def uvicorn_settings(host: str, port: int) -> dict[str, Any]:
    """The keyword arguments ``reportscore serve`` passes to ``uvicorn.run`` (loop/http left on "auto", so uvloop
    and httptools are used when installed, as in the service)."""
    return {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        "server_header": False,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the benchmark's HTTP floor app (constant scores).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(create_floor_app(), **uvicorn_settings(args.host, args.port))


if __name__ == "__main__":
    main()
