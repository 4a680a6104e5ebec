"""Reasons: a report's top feature contributions under the model version that scored it.

Computed on demand (a queue page, ``GET /task/{id}?explain=true``), never while scoring, and stored once computed.
The model that scored a report is used even after a promotion: the serving model if it is that version, otherwise
the version is loaded from the artifact store (sha256-checked) and kept in a small cache. When that version cannot
be loaded the reasons are null (and not stored, so a later request tries again); when its format gives no
contributions they are null and stored as such — nothing is made up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from reportscore.scoring.formats.base import ModelFormat, contributions_of
from reportscore.scoring.registry import ModelRegistry, ServingModel, load_model_dir
from reportscore.storage.db import Database
from reportscore.storage.repositories import models as models_repo
from reportscore.storage.repositories.moderation import ReviewRow

log = logging.getLogger(__name__)

TOP_REASONS = 3
RETRY_UNAVAILABLE_S = 60.0


@dataclass(frozen=True)
class Explained:
    """Reasons by report id (null: none available), and the rows to store."""

    reasons: dict[int, list[dict[str, Any]] | None]
    to_store: list[dict[str, Any]]


def top_reasons(names: Sequence[str], contributions: np.ndarray, k: int = TOP_REASONS) -> list[dict[str, Any]]:
    """The ``k`` largest contributions by absolute value (ties in schema order), zeros left out."""
    order = sorted(range(len(names)), key=lambda j: -abs(float(contributions[j])))
    return [
        {"feature": names[j], "contribution": float(contributions[j])} for j in order[:k] if contributions[j] != 0.0
    ]


class ReasonExplainer:
    """Computes reasons with the model version that scored each report; holds up to ``cache_size`` other versions."""

    def __init__(
        self,
        *,
        registry: ModelRegistry,
        db: Database,
        formats: dict[str, ModelFormat],
        threads: int = 1,
        cache_size: int = 2,
    ) -> None:
        self._registry = registry
        self._db = db
        self._formats = formats
        self._threads = threads
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], ServingModel] = OrderedDict()
        self._unavailable: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def model_for(self, name: str, version: str) -> ServingModel | None:
        """The loaded model ``name`` ``version``, or None when it is not registered or cannot be loaded."""
        current = self._registry.current
        if (current.name, current.version) == (name, version):
            return current
        key = (name, version)
        with self._lock:  # one load at a time: concurrent pages of old reports load an old version once
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            failed_at = self._unavailable.get(key)
            if failed_at is not None and time.monotonic() - failed_at < RETRY_UNAVAILABLE_S:
                return None
            try:
                model = self._load(name, version)
            except Exception as exc:
                log.warning(
                    "model version for reasons unavailable",
                    extra={"model_name": name, "model_version": version, "error": str(exc)[:500]},
                )
                model = None
            if model is None:
                self._unavailable[key] = time.monotonic()
                return None
            self._unavailable.pop(key, None)
            self._cache[key] = model
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return model

    def _load(self, name: str, version: str) -> ServingModel | None:
        with self._db.read() as session:
            row = models_repo.get_version(session, name=name, version=version)
            if row is None:
                return None
            uri, sha256 = row.artifact_uri, row.sha256
        model_dir = self._registry.store.model_dir(uri, sha256=sha256)
        model = load_model_dir(model_dir, threads=self._threads, formats=self._formats)
        if model.sha256 != sha256:
            raise ValueError(f"artifact sha256 {model.sha256} differs from the registry's {sha256}")
        return model

    def explain(self, rows: Sequence[ReviewRow]) -> Explained:
        """Reasons for ``rows``: the stored ones as they are, the others computed (one model call per version)."""
        reasons: dict[int, list[dict[str, Any]] | None] = {}
        missing: dict[tuple[str, str], list[ReviewRow]] = {}
        for row in rows:
            if row.reasons_stored:
                reasons[row.id] = row.reasons
            elif row.model_name is None or row.model_version is None:
                reasons[row.id] = None
            else:
                missing.setdefault((row.model_name, row.model_version), []).append(row)
        to_store: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for (name, version), group in missing.items():
            computed = self._compute(name, version, group)
            if computed is None:  # the version is unavailable now: null, and not stored
                reasons.update(dict.fromkeys((r.id for r in group), None))
                continue
            for row, row_reasons in zip(group, computed, strict=True):
                reasons[row.id] = row_reasons
                to_store.append(
                    {
                        "report_id": row.id,
                        "model_name": name,
                        "model_version": version,
                        "reasons": row_reasons,
                        "computed_at": now,
                    }
                )
        return Explained(reasons=reasons, to_store=to_store)

    def _compute(self, name: str, version: str, group: Sequence[ReviewRow]) -> list[list[dict[str, Any]] | None] | None:
        model = self.model_for(name, version)
        if model is None:
            return None
        columns = {field: [r.features[field] for r in group] for field in group[0].features}
        matrix = model.schema.encode(columns)  # the same encoding the model scored with
        try:
            contributions = contributions_of(model.model, matrix)
        except Exception:
            log.warning("contributions failed", extra={"model_version": version}, exc_info=True)
            return None
        if contributions is None:
            return [None] * len(group)
        names = model.schema.names
        return [top_reasons(names, contributions[i]) for i in range(len(group))]
