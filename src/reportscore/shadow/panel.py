"""The dashboard's shadow panel: each running shadow against the champion, recomputed at most every ``ttl_s``."""

from __future__ import annotations

import threading
import time
from typing import Any

from reportscore.settings import Settings
from reportscore.shadow.compare import compare
from reportscore.storage.db import Database
from reportscore.storage.repositories import models as models_repo
from reportscore.storage.repositories import shadow as shadow_repo

PANEL_MAX_REPORTS = 20_000
PANEL_RESAMPLES = 200


class ShadowPanel:
    """A small, cached comparison per shadow (a bounded sample and fewer resamples than ``models compare``)."""

    def __init__(self, *, db: Database, settings: Settings, ttl_s: float = 60.0) -> None:
        self._db = db
        self._settings = settings
        self._ttl_s = ttl_s
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def summary(self) -> dict[str, Any]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self._ttl_s:
                return self._cached[1]
            data = self._build()
            self._cached = (time.monotonic(), data)
            return data

    def _build(self) -> dict[str, Any]:
        name = self._settings.model_name
        with self._db.read() as session:
            champ = models_repo.champion(session, name=name)
            shadows = shadow_repo.list_shadows(session, name=name)
        champion = None if champ is None else champ.version
        rows: list[dict[str, Any]] = []
        for shadow in shadows:
            row: dict[str, Any] = {"version": shadow.version, "fraction": shadow.fraction}
            if champion is not None:
                result = compare(
                    db=self._db,
                    champion=champion,
                    challenger=shadow.version,
                    max_reports=PANEL_MAX_REPORTS,
                    resamples=PANEL_RESAMPLES,
                )
                auc = (result.labelled or {}).get("metrics", {}).get("roc_auc")
                row.update(
                    n_reports=result.n_reports,
                    n_labelled=result.n_labelled,
                    pearson=result.agreement["pearson"],
                    spearman=result.agreement["spearman"],
                    top_10_overlap=result.agreement["top_k_overlap"]["10%"],
                    roc_auc_champion=None if auc is None else auc["champion"],
                    roc_auc_challenger=None if auc is None else auc["challenger"],
                    verdict=result.verdict,
                )
            rows.append(row)
        return {"champion": champion, "ttl_s": self._ttl_s, "shadows": rows}
