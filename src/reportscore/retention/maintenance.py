"""The maintenance loop: a thread in every API process that runs ``maintenance_pass`` every
``maintenance_interval_s`` (on PostgreSQL an advisory lock lets one process at a time work)."""

from __future__ import annotations

import logging
import threading

from reportscore.retention.service import maintenance_pass
from reportscore.settings import Settings
from reportscore.storage.db import Database

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(self, *, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.maintenance_interval_s):
            try:
                self.run_once()
            except Exception:
                log.warning("maintenance pass failed", exc_info=True)

    def run_once(self) -> None:
        maintenance_pass(
            self._db,
            callback_retention_s=self._settings.callback_retention_s,
            batch=self._settings.purge_batch_jobs,
        )
