"""The monitoring side of one API process: the ``/metrics`` registry, the dashboard sampler, recent errors.

Built and started by the app's lifespan (``app.state.monitoring``); the routes in ``api/routes/monitoring.py`` read
from it.
"""

from __future__ import annotations

import logging
from typing import Any

from reportscore.drift.metrics import DriftCollector
from reportscore.monitoring import dashboard, exposition, metrics
from reportscore.quality.collector import QualityCollector
from reportscore.scoring.registry import ModelRegistry
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import stats as stats_repo

RECENT_ERRORS = 15


class Monitoring:
    def __init__(self, *, settings: Settings, db: Database, registry: ModelRegistry) -> None:
        self._settings = settings
        self._db = db
        self._models = registry
        self.store = exposition.StoreCollector(self._read_queue)
        self.drift = DriftCollector(db=db, settings=settings, served_version=lambda: registry.current.version)
        self.quality = QualityCollector(db=db, settings=settings)
        self.registry = exposition.exposition_registry(self.store, self.drift, self.quality)
        self.sampler = dashboard.Sampler(self.registry)
        self.errors = dashboard.RecentErrors()

    def _read_queue(self) -> stats_repo.QueueStats:
        with self._db.read() as session:
            return stats_repo.queue_stats(session)

    @property
    def runner(self) -> str:
        return "inprocess" if self._settings.mode == "embedded" else "celery"

    async def start(self) -> None:
        """Count this process's scoring threads and model, then start sampling for the dashboard."""
        logging.getLogger().addHandler(self.errors)
        model = self._models.current
        metrics.note_serving_model(model_name=model.name, model_version=model.version)
        if self._settings.mode == "embedded":
            metrics.set_workers_up("inprocess", self._settings.worker_threads)
        self.sampler.start()

    async def stop(self) -> None:
        await self.sampler.stop()
        if self._settings.mode == "embedded":
            metrics.set_workers_up("inprocess", 0)
        logging.getLogger().removeHandler(self.errors)

    def dashboard_data(self) -> dict[str, Any]:
        """The body of ``GET /dashboard/data`` (blocking: reads the store and the metric files)."""
        self.sampler.sample_if_older_than(dashboard.SAMPLE_INTERVAL_S / 2)
        try:
            with self._db.read() as session:
                failures = stats_repo.recent_failures(session, limit=RECENT_ERRORS)
        except Exception as exc:
            logging.getLogger(__name__).warning("could not read recent failures", extra={"error": repr(exc)[:300]})
            failures = []
        model = self._models.current
        return dashboard.build(
            self.sampler.snapshots(),
            mode=self._settings.mode,
            runner=self.runner,
            model={
                "name": model.name,
                "version": model.version,
                "format": model.format,
                "sha256": model.sha256,
                "loaded_at": model.loaded_at,
            },
            errors=dashboard.recent_errors(failures, self.errors.entries(), limit=RECENT_ERRORS),
            score_bounds=metrics.SCORE_BUCKETS,
            quality=self.quality.rows(),
        )
