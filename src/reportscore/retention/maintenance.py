"""The maintenance loop: a thread in every API process that runs ``maintenance_pass`` every
``maintenance_interval_s`` (on PostgreSQL an advisory lock lets one process at a time work)."""

from __future__ import annotations

from reportscore.periodic import Periodic
from reportscore.retention.service import maintenance_pass
from reportscore.settings import Settings
from reportscore.storage.db import Database


class Maintenance(Periodic):
    def __init__(self, *, db: Database, settings: Settings) -> None:
        super().__init__(name="maintenance", interval_s=settings.maintenance_interval_s)
        self._db = db
        self._settings = settings

    def run_once(self) -> None:
        maintenance_pass(
            self._db,
            callback_retention_s=self._settings.callback_retention_s,
            batch=self._settings.purge_batch_jobs,
        )
