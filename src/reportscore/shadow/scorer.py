"""The shadow scorer of one process: scores batches the champion already answered with each shadow version.

Runners hand it a batch after the champion's results are committed (``offer`` never blocks and never raises). One
background thread takes batches from a bounded backlog, every batch waiting at once, calls each shadow once per
such pass on the share of reports its fraction selects, and stores the scores in ``shadow_scores`` in one write.
When the backlog is full the batch is skipped and counted: a shadow that falls behind sheds load instead of growing
a queue. The thread is busy at most ``max_busy_share`` of the time: after a pass that took t seconds (wall clock:
its model calls, and its write, which shares the store with the champion's) it rests t x (1/share - 1), so under
full load it cannot take the champion's CPU or writer; it falls behind and sheds instead. Every ``refresh_s`` the
thread follows the shadow set recorded in the database (loading new versions, dropping stopped ones), like the
champion watcher.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from reportscore.monitoring import metrics
from reportscore.scoring.registry import ServingModel
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import jobs as jobs_repo
from reportscore.storage.repositories import shadow as shadow_repo

log = logging.getLogger(__name__)

Loader = Callable[[str], ServingModel]
"""Loads a registered version (sha256-checked and warmed up) by its version string."""
Writer = Callable[[Callable[[Session], Any]], Any]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def chosen(report_ids: Sequence[int], fraction: float) -> np.ndarray:
    """Indices of the reports a shadow with ``fraction`` scores: decided by report id alone, so every process
    (and every retry of a job) picks the same reports."""
    ids = np.asarray(report_ids, dtype=np.uint64)
    if fraction >= 1.0:
        return np.arange(len(ids))
    with np.errstate(over="ignore"):
        mixed = ids * _GOLDEN
    return np.flatnonzero((mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction)


@dataclass(frozen=True)
class PendingBatch:
    """Jobs whose champion results are committed, with their reports (or None: read them back)."""

    job_ids: list[str]
    rows: jobs_repo.FeatureRows | None
    n_reports: int


@dataclass(frozen=True)
class _Active:
    model: ServingModel
    fraction: float


class ShadowScorer:
    def __init__(
        self,
        *,
        db: Database,
        name: str,
        loader: Loader,
        refresh_s: float,
        max_pending_batches: int,
        max_busy_share: float = 1.0,
        write: Writer | None = None,
    ) -> None:
        self._db = db
        self._name = name
        self._loader = loader
        self._refresh_s = refresh_s
        self._write = write
        self._rest_factor = 1.0 / max_busy_share - 1.0
        self._stopping = threading.Event()
        self._backlog: queue.Queue[PendingBatch | None] = queue.Queue(maxsize=max_pending_batches)
        self._active: dict[str, _Active] = {}
        self._failed: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="shadow-scorer", daemon=True)
        self._stopped = False

    @property
    def versions(self) -> dict[str, float]:
        """The shadows this process scores now, with their fractions."""
        return {v: a.fraction for v, a in self._active.items()}

    def start(self) -> ShadowScorer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopped = True
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._backlog.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def offer(self, *, job_ids: Sequence[str], rows: jobs_repo.FeatureRows | None = None, n_reports: int = 0) -> None:
        """Hand over jobs whose champion results are committed (their reports in ``rows``, or read back later)."""
        if not job_ids or not self._active or self._stopped:
            return
        try:
            self._backlog.put_nowait(PendingBatch(list(job_ids), rows, n_reports))
        except queue.Full:
            wanted = set(job_ids)
            skipped = n_reports if rows is None else sum(1 for j in rows.job_ids if j in wanted)
            metrics.observe_shadow_skipped(skipped)

    def refresh(self) -> None:
        """Follow the shadow set in the database: load new shadows, drop stopped ones, update fractions."""
        with self._db.read() as session:
            wanted = {s.version: s.fraction for s in shadow_repo.list_shadows(session, name=self._name)}
        active = {v: a for v, a in self._active.items() if v in wanted}
        for version, fraction in wanted.items():
            if version in active:
                active[version] = _Active(active[version].model, fraction)
                continue
            if version in self._failed:
                continue
            try:
                model = self._loader(version)
            except Exception as exc:
                self._failed.add(version)  # versions are immutable: it would fail the same way again
                log.error("shadow failed to load", extra={"model_version": version, "error": str(exc)[:500]})
                continue
            active[version] = _Active(model, fraction)
            log.info("shadow started", extra={"model_version": version, "fraction": fraction})
        for version in set(self._active) - set(active):
            log.info("shadow stopped", extra={"model_version": version})
        self._active = active

    def run_pending(self) -> int:
        """Score every batch waiting now (in the caller's thread); returns how many there were."""
        done = 0
        while True:
            try:
                batch = self._backlog.get_nowait()
            except queue.Empty:
                return done
            if batch is not None:
                self.score_batch(batch.job_ids, batch.rows)
                done += 1

    def score_batch(self, job_ids: Sequence[str], rows: jobs_repo.FeatureRows | None) -> None:
        """Score one batch with every shadow; a failure is logged and counted, never raised."""
        self.score_batches([PendingBatch(list(job_ids), rows, 0)])

    def score_batches(self, batches: Sequence[PendingBatch]) -> None:
        """Score batches together with every shadow (one model call and one write per shadow); a failure is
        logged and counted, never raised."""
        active = dict(self._active)
        if not active:
            return
        try:
            parts = []
            for batch in batches:
                rows = batch.rows
                if rows is not None and len(set(rows.job_ids) - set(batch.job_ids)):
                    rows = subset_rows(rows, set(batch.job_ids))
                if rows is None:
                    with self._db.read() as session:
                        rows = jobs_repo.load_features(session, list(batch.job_ids))
                parts.append(rows)
        except Exception:
            log.warning("shadow: could not read the batch's reports", exc_info=True)
            return
        rows = parts[0] if len(parts) == 1 else concat_rows(parts)
        for version, shadow in active.items():
            self._score_with(version, shadow, rows)

    def _score_with(self, version: str, shadow: _Active, rows: jobs_repo.FeatureRows) -> None:
        picked = chosen(rows.report_ids, shadow.fraction)
        if len(picked) == 0:
            return
        columns = {name: [values[i] for i in picked] for name, values in rows.columns.items()}
        report_ids = [rows.report_ids[i] for i in picked]
        try:
            scores = shadow.model.score(columns)
            if scores.shape != (len(report_ids),) or not np.all(np.isfinite(scores)):
                raise ValueError(f"shadow returned shape {scores.shape} or a non-finite score")
            if scores.min() < 0 or scores.max() > 1:
                raise ValueError("shadow returned a score outside 0..1")
            at = datetime.now(UTC)
            values = [
                {"report_id": rid, "model_version": version, "score": float(s), "scored_at": at}
                for rid, s in zip(report_ids, scores.tolist(), strict=True)
            ]
            self._run_write(lambda session: shadow_repo.save_scores(session, values))
        except Exception as exc:
            metrics.observe_shadow(model_version=version, failed=len(report_ids))
            log.warning("shadow scoring failed", extra={"model_version": version, "error": repr(exc)[:500]})
            return
        metrics.observe_shadow(model_version=version, scored=len(report_ids))

    def _run_write(self, work: Callable[[Session], Any]) -> Any:
        if self._write is not None:
            return self._write(work)
        with self._db.write() as session:
            return work(session)

    def _loop(self) -> None:
        next_refresh = 0.0
        while not self._stopped:
            now = time.monotonic()
            if now >= next_refresh:
                try:
                    self.refresh()
                except Exception:
                    log.warning("shadow set check failed", exc_info=True)
                next_refresh = now + self._refresh_s
            try:
                batch = self._backlog.get(timeout=max(0.01, next_refresh - time.monotonic()))
            except queue.Empty:
                continue
            batches = [batch]
            while batches[-1] is not None:  # every batch waiting now, scored together
                try:
                    batches.append(self._backlog.get_nowait())
                except queue.Empty:
                    break
            stop = batches[-1] is None
            work = [b for b in batches if b is not None]
            started = time.monotonic()
            if work:
                self.score_batches(work)
            if stop:
                return
            if self._rest_factor > 0:
                self._stopping.wait((time.monotonic() - started) * self._rest_factor)


def scorer_from_settings(settings: Settings, db: Database, *, write: Writer | None = None) -> ShadowScorer:
    """The process's shadow scorer, loading versions from the registry's artifact store (not started)."""
    from reportscore.scoring.registry import load_version

    return ShadowScorer(
        db=db,
        name=settings.model_name,
        loader=lambda version: load_version(db=db, settings=settings, version=version),
        refresh_s=settings.model_refresh_s,
        max_pending_batches=settings.shadow_max_pending_batches,
        max_busy_share=settings.shadow_max_busy_share,
        write=write,
    )


def subset_rows(rows: jobs_repo.FeatureRows, job_ids: set[str]) -> jobs_repo.FeatureRows:
    """The rows of ``job_ids`` only (the jobs whose champion results were written)."""
    idx = [i for i, j in enumerate(rows.job_ids) if j in job_ids]
    return jobs_repo.FeatureRows(
        job_ids=[rows.job_ids[i] for i in idx],
        report_ids=[rows.report_ids[i] for i in idx],
        columns={k: [v[i] for i in idx] for k, v in rows.columns.items()},
    )


def concat_rows(parts: Sequence[jobs_repo.FeatureRows]) -> jobs_repo.FeatureRows:
    """Several batches' rows as one."""
    return jobs_repo.FeatureRows(
        job_ids=[j for p in parts for j in p.job_ids],
        report_ids=[r for p in parts for r in p.report_ids],
        columns={k: [v for p in parts for v in p.columns[k]] for k in parts[0].columns},
    )
