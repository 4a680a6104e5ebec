"""Adaptive micro-batching for synchronous scoring (``POST /score``) in the API process.

Requests queue their reports; one dispatcher takes everything queued (up to ``max_reports``, waiting at most
``max_wait_ms`` for more once the first arrives), scores it in ONE model call on a dedicated thread, and hands each
request its slice. While a batch is being scored the next one fills up, so batches grow with load by themselves.
When the model call fails, each request of the batch is scored alone (:func:`reportscore.batching.isolate`): only
a request whose own reports fail gets the error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from reportscore.batching import AsyncBatches, Limits, isolate
from reportscore.monitoring import metrics
from reportscore.scoring.features import REPORT_FIELDS
from reportscore.scoring.registry import ModelRegistry, ServingModel


@dataclass(frozen=True)
class Scored:
    scores: list[float]
    model: ServingModel
    predict_ms: float


_Request = tuple[Sequence[Mapping[str, Any]], "asyncio.Future[Scored]"]


class MicroBatcher:
    def __init__(self, registry: ModelRegistry, *, max_reports: int, max_wait_ms: float) -> None:
        self._registry = registry
        self._limits: Limits[_Request] = Limits(
            max_size=max_reports, size=lambda request: len(request[0]), linger_s=max_wait_ms / 1000.0
        )
        self._queue: AsyncBatches[_Request] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-scoring")
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def start(self) -> None:
        self._queue = AsyncBatches(self._limits)
        self._task = asyncio.create_task(self._dispatch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def score(self, reports: Sequence[Mapping[str, Any]]) -> Scored:
        assert self._queue is not None, "batcher not started"
        future: asyncio.Future[Scored] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((reports, future))
        return await future

    async def _dispatch(self) -> None:
        assert self._queue is not None
        while True:
            batch = await self._queue.take()
            model = self._registry.current

            async def run(requests: list[_Request], model: ServingModel = model) -> tuple[list[float], float]:
                try:
                    return await asyncio.get_running_loop().run_in_executor(self._executor, _predict, model, requests)
                except Exception:
                    metrics.observe_predict_error(model_version=model.version, source="sync")
                    raise

            for requests, outcome in await isolate(batch, run):
                if isinstance(outcome, Exception):
                    for _, future in requests:
                        if not future.done():
                            future.set_exception(outcome)
                    continue
                self.batches += 1
                scores, predict_ms = outcome
                start = 0
                for reports, future in requests:
                    end = start + len(reports)
                    if not future.done():
                        future.set_result(Scored(scores[start:end], model, predict_ms))
                    start = end


def _predict(model: ServingModel, batch: list[_Request]) -> tuple[list[float], float]:
    columns: dict[str, list[Any]] = {name: [r[name] for reports, _ in batch for r in reports] for name in REPORT_FIELDS}
    t0 = time.perf_counter()
    scores = model.score(columns)
    predict_ms = (time.perf_counter() - t0) * 1000
    n = len(columns["abuse_type"])
    if scores.shape != (n,) or not ((scores >= 0) & (scores <= 1)).all():
        raise ValueError("the model did not return one finite score in 0..1 per report")
    metrics.observe_predict(
        model_name=model.name,
        model_version=model.version,
        source="sync",
        seconds=predict_ms / 1000,
        abuse_types=columns["abuse_type"],
        scores=scores,
    )
    return scores.astype(float).tolist(), predict_ms
