"""``score_jobs`` — the one function every runner calls: claim, read, predict in one call, write in one transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from reportscore.monitoring import metrics
from reportscore.scoring.registry import ServingModel
from reportscore.storage.db import Database
from reportscore.storage.repositories import callbacks as callbacks_repo
from reportscore.storage.repositories import jobs as jobs_repo
from reportscore.storage.repositories import stats as stats_repo

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What one call of ``score_jobs`` did, by job id."""

    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    n_reports: int = 0
    predict_ms: float = 0.0

    @property
    def finished(self) -> list[str]:
        return self.succeeded + self.failed


def score_jobs(
    *,
    db: Database,
    model: ServingModel,
    job_ids: Sequence[str],
    max_attempts: int = 3,
    lease_s: float = 300.0,
    extra_pending: int = 0,
    extra_max_reports: int = 0,
) -> BatchOutcome:
    """Score a micro-batch of jobs with one model call and write all results in one transaction.

    A job whose reports make the model fail or return a non-finite score or one outside 0..1 is re-scored alone,
    so one poison job fails with its reason while the rest of the batch succeeds.
    """
    outcome = BatchOutcome()
    claimed_at = datetime.now(UTC)
    with db.write() as session:
        claimed, exhausted = jobs_repo.claim_jobs(
            session,
            job_ids=job_ids,
            now=claimed_at,
            lease_s=lease_s,
            max_attempts=max_attempts,
            extra_pending=extra_pending,
            extra_max_reports=extra_max_reports,
        )
        callbacks_repo.enqueue_for_jobs(session, job_ids=exhausted, now=claimed_at)
        created_at = stats_repo.created_at_of(session, [*claimed, *exhausted])
    outcome.failed.extend(exhausted)
    _observe_finished("FAILURE", exhausted, created_at, claimed_at)
    taken = set(claimed) | set(exhausted)
    outcome.skipped.extend(j for j in job_ids if j not in taken)  # finished, or leased by another worker
    if not claimed:
        return outcome
    with db.read() as session:
        rows = jobs_repo.load_features(session, claimed)
    outcome.n_reports = len(rows.report_ids)

    results: list[jobs_repo.JobResult] = []
    failures: dict[str, str] = {}
    t0 = time.perf_counter()
    try:
        scores = _checked_predict(model, rows.columns)
        predict_ms = (time.perf_counter() - t0) * 1000
        _observe_predict(model, rows, scores, predict_ms)
        results = _split(rows, scores, model, predict_ms)
    except Exception:  # isolate the job(s) at fault by scoring each alone
        metrics.observe_predict_error(model_version=model.version, source="queue")
        log.warning("batch predict failed; re-scoring %d jobs one by one", len(claimed), exc_info=True)
        for job_id in claimed:
            sub = _subset(rows, job_id)
            t1 = time.perf_counter()
            try:
                job_scores = _checked_predict(model, sub.columns)
            except Exception as exc:
                metrics.observe_predict_error(model_version=model.version, source="queue")
                failures[job_id] = f"scoring failed: {type(exc).__name__}: {exc}"
                continue
            job_ms = (time.perf_counter() - t1) * 1000
            _observe_predict(model, sub, job_scores, job_ms)
            results.extend(_split(sub, job_scores, model, job_ms))
    outcome.predict_ms = (time.perf_counter() - t0) * 1000
    with_result = {r.job_id for r in results}
    for job_id in claimed:
        if job_id not in with_result and job_id not in failures:
            failures[job_id] = "scoring failed: the job has no stored reports"

    finished_at = datetime.now(UTC)
    with db.write() as session:
        outcome.succeeded = jobs_repo.save_results(session, results=results, finished_at=finished_at)
        for job_id, error in failures.items():
            if jobs_repo.save_failure(session, job_id=job_id, error=error, finished_at=finished_at):
                outcome.failed.append(job_id)
        # The callback outbox rows commit with the final statuses: a crash cannot lose one without the other.
        callbacks_repo.enqueue_for_jobs(
            session, job_ids=[*outcome.succeeded, *(j for j in failures if j in outcome.failed)], now=finished_at
        )
    written = set(outcome.succeeded) | set(outcome.failed)
    outcome.skipped.extend(j for j in claimed if j not in written)
    _observe_finished("SUCCESS", outcome.succeeded, created_at, finished_at)
    _observe_finished("FAILURE", [j for j in failures if j in written], created_at, finished_at)
    for job_id in outcome.succeeded:
        log.info(
            "job scored",
            extra={
                "task_id": job_id,
                "model_version": model.version,
                "predict_ms": round(outcome.predict_ms, 3),
                "latency_ms": _latency_ms(created_at.get(job_id), finished_at),
            },
        )
    for job_id in failures:
        log.error("job failed", extra={"task_id": job_id, "error": failures[job_id]})
    return outcome


def _observe_predict(model: ServingModel, rows: jobs_repo.FeatureRows, scores: np.ndarray, predict_ms: float) -> None:
    metrics.observe_predict(
        model_name=model.name,
        model_version=model.version,
        source="queue",
        seconds=predict_ms / 1000,
        abuse_types=rows.columns["abuse_type"],
        scores=scores,
    )


def _observe_finished(
    status: Literal["SUCCESS", "FAILURE"], job_ids: Iterable[str], created_at: Mapping[str, datetime], at: datetime
) -> None:
    metrics.observe_jobs_finished(status, [(at - created_at[j]).total_seconds() for j in job_ids if j in created_at])


def _latency_ms(created_at: datetime | None, finished_at: datetime) -> float | None:
    return None if created_at is None else round((finished_at - created_at).total_seconds() * 1000, 3)


def _checked_predict(model: ServingModel, columns: dict[str, list[object]]) -> np.ndarray:
    scores = model.score(columns)
    n = len(columns["abuse_type"])
    if scores.shape != (n,):
        raise ValueError(f"model returned shape {scores.shape} for {n} reports")
    if not np.all(np.isfinite(scores)) or (n and (scores.min() < 0 or scores.max() > 1)):
        raise ValueError("model returned a score that is not a finite number in 0..1")
    return scores


def _split(
    rows: jobs_repo.FeatureRows, scores: np.ndarray, model: ServingModel, predict_ms: float
) -> list[jobs_repo.JobResult]:
    """Cut the batch's score vector back into one result per job (rows are ordered by job)."""
    out: list[jobs_repo.JobResult] = []
    start = 0
    n = len(rows.job_ids)
    score_list = scores.tolist()
    while start < n:
        job_id = rows.job_ids[start]
        end = start
        while end < n and rows.job_ids[end] == job_id:
            end += 1
        out.append(
            jobs_repo.JobResult(
                job_id=job_id,
                report_ids=rows.report_ids[start:end],
                scores=score_list[start:end],
                model_name=model.name,
                model_version=model.version,
                predict_ms=predict_ms,
            )
        )
        start = end
    return out


def _subset(rows: jobs_repo.FeatureRows, job_id: str) -> jobs_repo.FeatureRows:
    idx = [i for i, j in enumerate(rows.job_ids) if j == job_id]
    return jobs_repo.FeatureRows(
        job_ids=[job_id] * len(idx),
        report_ids=[rows.report_ids[i] for i in idx],
        columns={k: [v[i] for i in idx] for k, v in rows.columns.items()},
    )
