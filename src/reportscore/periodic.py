"""A pass that one background thread runs every few seconds until stopped (the reconciler, the maintenance pass,
the automatic rollback check): one loop, one way of stopping, one way of surviving a failed pass."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Periodic:
    """Runs :meth:`run_once` every ``interval_s`` on a daemon thread named ``name``; a pass that raises is logged
    and the next one runs as usual. Subclasses implement :meth:`run_once`."""

    def __init__(self, *, name: str, interval_s: float) -> None:
        self._name = name
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.run_once()
            except Exception:
                log.warning("%s pass failed", self._name, exc_info=True)
