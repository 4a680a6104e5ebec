"""``score_jobs`` — the one function every runner calls: claim, read, predict in one call, write in one transaction."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import numpy as np
from sqlalchemy.orm import Session

from reportscore.drift import service as drift
from reportscore.jobs.views import TaskView
from reportscore.monitoring import metrics
from reportscore.scoring.formats.base import ModelUnavailableError
from reportscore.scoring.leases import LeaseKeeper
from reportscore.scoring.registry import ServingModel
from reportscore.storage.db import Database
from reportscore.storage.models import JobStatus
from reportscore.storage.repositories import callbacks as callbacks_repo
from reportscore.storage.repositories import jobs as jobs_repo

log = logging.getLogger(__name__)
T = TypeVar("T")
Writer = Callable[[Callable[[Session], Any]], Any]
"""Runs a unit of work ``work(session)`` in a committed write transaction and returns its result."""


@dataclass
class BatchOutcome:
    """What one call of ``score_jobs`` did, by job id."""

    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    """Jobs of ``job_ids`` left unclaimed because another of them was being retried and went alone: the caller
    scores them next (see ``claim_jobs``)."""
    n_reports: int = 0
    predict_ms: float = 0.0
    views: dict[str, TaskView] = field(default_factory=dict)
    """The finished jobs as ``GET /task`` shows them (what was committed), for an in-memory cache."""
    owners: dict[str, str] = field(default_factory=dict)
    """Owner of each job in ``views``."""
    rows: jobs_repo.FeatureRows | None = None
    """The claimed jobs' reports as scored (for the shadows, which score the ``succeeded`` ones afterwards)."""

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
    write: Writer | None = None,
    features: Mapping[str, jobs_repo.FeatureRows] | None = None,
    leases: LeaseKeeper | None = None,
) -> BatchOutcome:
    """Score a micro-batch of jobs with one model call and write all results in one transaction.

    A job whose reports make the model fail or return a non-finite score or one outside 0..1 is re-scored alone,
    so one poison job fails with its reason while the rest of the batch succeeds.
    ``write`` runs the claim and the results (default: a transaction of their own; the embedded runner passes its
    group committer, so one writer does every write). ``features`` are reports already in memory, by job id
    (they are read from the store for the other jobs). ``leases`` renews the claimed jobs' leases until their
    results are written (a Celery worker's heartbeat); every result write is fenced by the claim's attempt number.
    """
    outcome = BatchOutcome()
    run_write: Writer = write if write is not None else functools.partial(_in_transaction, db)
    claimed_at = datetime.now(UTC)

    in_memory = features or {}
    # In a transaction of its own (a Celery worker), the claim also reads the reports: one round trip fewer. A
    # shared writer (embedded) keeps reads out of its transactions; there the reports are normally in memory.
    read_in_claim = write is None

    def claim(
        session: Session,
    ) -> tuple[list[str], list[str], list[str], dict[str, jobs_repo.ClaimedJob], jobs_repo.FeatureRows | None]:
        claimed, exhausted, deferred, known = jobs_repo.claim_jobs(
            session,
            job_ids=job_ids,
            now=claimed_at,
            lease_s=lease_s,
            max_attempts=max_attempts,
            extra_pending=extra_pending,
            extra_max_reports=extra_max_reports,
        )
        missing = [j for j in claimed if j not in in_memory]
        loaded = jobs_repo.load_features(session, missing) if read_in_claim and missing else None
        info = known if known is not None else jobs_repo.claimed_jobs(session, [*claimed, *exhausted])
        # A job given up on here ends now: its callback's outbox row commits with that status.
        with_callback = [j for j in exhausted if info[j].has_callback]
        callbacks_repo.enqueue_for_jobs(session, job_ids=with_callback, now=claimed_at)
        return claimed, exhausted, deferred, info, loaded

    claimed, exhausted, deferred, info, loaded = run_write(claim)
    outcome.deferred = deferred
    created_at = {job_id: job.created_at for job_id, job in info.items()}
    outcome.failed.extend(exhausted)
    _observe_finished("FAILURE", exhausted, created_at, claimed_at)
    taken = set(claimed) | set(exhausted) | set(deferred)
    outcome.skipped.extend(j for j in job_ids if j not in taken)  # finished, or leased by another worker
    if not claimed:
        return outcome
    attempts = {job_id: info[job_id].attempts for job_id in claimed}
    with leases.holding(attempts) if leases is not None else nullcontext():
        return _score_claimed(
            db=db,
            model=model,
            claimed=claimed,
            attempts=attempts,
            info=info,
            in_memory=in_memory,
            loaded=loaded,
            run_write=run_write,
            outcome=outcome,
            claimed_at=claimed_at,
            max_attempts=max_attempts,
        )


def _score_claimed(
    *,
    db: Database,
    model: ServingModel,
    claimed: list[str],
    attempts: Mapping[str, int],
    info: Mapping[str, jobs_repo.ClaimedJob],
    in_memory: Mapping[str, jobs_repo.FeatureRows],
    loaded: jobs_repo.FeatureRows | None,
    run_write: Writer,
    outcome: BatchOutcome,
    claimed_at: datetime,
    max_attempts: int,
) -> BatchOutcome:
    """Predict the claimed jobs and write their results (fenced by each claim's attempt number)."""
    created_at = {job_id: job.created_at for job_id, job in info.items()}
    rows = _features(db, claimed, in_memory, loaded)
    outcome.n_reports = len(rows.report_ids)
    outcome.rows = rows

    results: list[jobs_repo.JobResult] = []
    failures: dict[str, str] = {}
    unavailable: ModelUnavailableError | None = None
    t0 = time.perf_counter()
    try:
        scores = _checked_predict(model, rows.columns)
        predict_ms = (time.perf_counter() - t0) * 1000
        _observe_predict(model, rows, scores, predict_ms)
        results = _split(rows, scores, model, predict_ms, attempts)
    except ModelUnavailableError as exc:  # no job is at fault: all of them are tried again later
        unavailable = exc
    except Exception:  # isolate the job(s) at fault by scoring each alone
        metrics.observe_predict_error(model_version=model.version, source="queue")
        log.warning("batch predict failed; re-scoring %d jobs one by one", len(claimed), exc_info=True)
        for job_id in claimed:
            sub = _subset(rows, job_id)
            t1 = time.perf_counter()
            try:
                job_scores = _checked_predict(model, sub.columns)
            except ModelUnavailableError as exc:
                unavailable = exc
                break
            except Exception as exc:
                metrics.observe_predict_error(model_version=model.version, source="queue")
                failures[job_id] = f"scoring failed: {type(exc).__name__}: {exc}"
                continue
            job_ms = (time.perf_counter() - t1) * 1000
            _observe_predict(model, sub, job_scores, job_ms)
            results.extend(_split(sub, job_scores, model, job_ms, attempts))
    outcome.predict_ms = (time.perf_counter() - t0) * 1000
    if unavailable is not None:
        metrics.observe_predict_error(model_version=model.version, source="queue")
        _retry_later(claimed, attempts, max_attempts, info, run_write, unavailable)
        failures = {j: _unavailable_reason(max_attempts, unavailable) for j in claimed}
        results = []
    with_result = {r.job_id for r in results}
    for job_id in claimed:
        if job_id not in with_result and job_id not in failures:
            failures[job_id] = "scoring failed: the job has no stored reports"

    finished_at = datetime.now(UTC)
    batch_drift = _drift_counts(db, model, rows, results, finished_at)

    def save(session: Session) -> tuple[list[str], list[str]]:
        succeeded = jobs_repo.save_results(session, results=results, finished_at=finished_at)
        # The drift histograms move with the scores they count: one UPSERT, in the same transaction.
        drift.record(session, batch_drift(succeeded))
        failed = [
            job_id
            for job_id, error in failures.items()
            if jobs_repo.save_failure(
                session, job_id=job_id, attempt=attempts[job_id], error=error, finished_at=finished_at
            )
        ]
        # The callback outbox rows commit with the final statuses: a crash cannot lose one without the other.
        with_callback = [j for j in (*succeeded, *failed) if info[j].has_callback]
        callbacks_repo.enqueue_for_jobs(session, job_ids=with_callback, now=finished_at)
        return succeeded, failed

    succeeded, failed = run_write(save)
    outcome.succeeded = succeeded
    outcome.failed.extend(failed)
    succeeded_ids = set(succeeded)
    written_results = [r for r in results if r.job_id in succeeded_ids]
    outcome.views = _views(info, rows, written_results, {j: failures[j] for j in failed}, finished_at, claimed_at)
    # Views of jobs with a callback are not handed on for caching: their delivery state keeps changing.
    outcome.owners = {job_id: info[job_id].owner for job_id in outcome.views if not info[job_id].has_callback}
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


def _unavailable_reason(max_attempts: int, exc: ModelUnavailableError) -> str:
    return f"scoring failed: the model was unavailable at each of {max_attempts} attempts: {exc}"


def _retry_later(
    claimed: Sequence[str],
    attempts: Mapping[str, int],
    max_attempts: int,
    info: Mapping[str, jobs_repo.ClaimedJob],
    run_write: Writer,
    exc: ModelUnavailableError,
) -> None:
    """The model's runtime did not answer, so no job is at fault: nothing is written for them. A job with attempts
    left is released (its lease ends now, so the next claim takes it again and counts an attempt) and the error is
    raised for the runner to try again later; a job that used up its attempts is left to fail with the reason."""
    retry = {j: attempts[j] for j in claimed if attempts[j] < max_attempts}
    if not retry:
        return
    now = datetime.now(UTC)
    give_up = [j for j in claimed if j not in retry]
    reason = _unavailable_reason(max_attempts, exc)

    def release(session: Session) -> None:
        jobs_repo.renew_leases(session, held=retry, now=now, lease_s=0.0)
        failed = [
            j
            for j in give_up
            if jobs_repo.save_failure(session, job_id=j, attempt=attempts[j], error=reason, finished_at=now)
        ]
        callbacks_repo.enqueue_for_jobs(session, job_ids=[j for j in failed if info[j].has_callback], now=now)

    run_write(release)
    log.warning(
        "model unavailable; jobs released to be tried again",
        extra={"jobs": len(retry), "failed_jobs": len(give_up), "error": str(exc)[:500]},
    )
    raise exc


def _drift_counts(
    db: Database,
    model: ServingModel,
    rows: jobs_repo.FeatureRows,
    results: Sequence[jobs_repo.JobResult],
    scored_at: datetime,
) -> Callable[[Sequence[str]], Mapping[tuple[str, datetime, str, str], int]]:
    """The drift counts of the jobs a result write succeeds for (every job, in the usual case, counted up front)."""
    count = functools.partial(drift.batch_counts, db, model_name=model.name, model_version=model.version)
    if not results:
        return lambda _succeeded: {}
    in_row_order = [rid for r in results for rid in r.report_ids] == rows.report_ids
    full = (
        count(columns=rows.columns, scores=[s for r in results for s in r.scores], scored_at=scored_at)
        if in_row_order
        else None
    )

    def for_jobs(succeeded: Sequence[str]) -> Mapping[tuple[str, datetime, str, str], int]:
        if full is not None and len(succeeded) == len(results):
            return full
        done = set(succeeded)
        written = [r for r in results if r.job_id in done]
        if not written:
            return {}
        position = {rid: i for i, rid in enumerate(rows.report_ids)}
        idx = [position[rid] for r in written for rid in r.report_ids]
        columns = {name: [values[i] for i in idx] for name, values in rows.columns.items()}
        scores = [s for r in written for s in r.scores]
        return count(columns=columns, scores=scores, scored_at=scored_at)

    return for_jobs


def _in_transaction(db: Database, work: Callable[[Session], T]) -> T:
    with db.write() as session:
        return work(session)


def _features(
    db: Database,
    job_ids: Sequence[str],
    in_memory: Mapping[str, jobs_repo.FeatureRows],
    loaded: jobs_repo.FeatureRows | None,
) -> jobs_repo.FeatureRows:
    """The claimed jobs' reports, ordered by job: from memory where given, else as read with the claim, else
    from the store."""
    parts = [in_memory[j] for j in job_ids if j in in_memory]
    missing = [j for j in job_ids if j not in in_memory]
    if loaded is not None:
        parts.append(loaded)
    elif missing:
        with db.read() as session:
            parts.append(jobs_repo.load_features(session, missing))
    if len(parts) == 1:
        return parts[0]
    return jobs_repo.FeatureRows(
        job_ids=[j for p in parts for j in p.job_ids],
        report_ids=[r for p in parts for r in p.report_ids],
        columns={name: [v for p in parts for v in p.columns[name]] for name in jobs_repo.REPORT_COLUMNS},
        client_report_ids=[c for p in parts for c in p.client_report_ids],
    )


def _views(
    info: Mapping[str, jobs_repo.ClaimedJob],
    rows: jobs_repo.FeatureRows,
    results: Sequence[jobs_repo.JobResult],
    failures: Mapping[str, str],
    finished_at: datetime,
    claimed_at: datetime,
) -> dict[str, TaskView]:
    """What the result transaction committed, as ``GET /task`` shows it (attempts and started_at as claimed)."""
    # Most batches carry no client ids at all: then no lookup per report.
    client_ids: dict[int, str | None] | None = (
        dict(zip(rows.report_ids, rows.client_report_ids, strict=True))
        if any(c is not None for c in rows.client_report_ids)
        else None
    )
    scored = jobs_repo.ScoredReport
    views: dict[str, TaskView] = {}

    def view(job_id: str, **fields: Any) -> TaskView | None:
        job = info.get(job_id)
        if job is None:
            return None
        return TaskView(
            task_id=job_id,
            n_reports=job.n_reports,
            attempts=job.attempts,
            created_at=job.created_at,
            started_at=job.started_at or claimed_at,
            finished_at=finished_at,
            **fields,
        )

    for res in results:
        v = view(
            res.job_id,
            status=JobStatus.SUCCESS,
            model_name=res.model_name,
            model_version=res.model_version,
            predict_ms=res.predict_ms,
            error=None,
            reports=[scored(rid, None, score) for rid, score in zip(res.report_ids, res.scores, strict=True)]
            if client_ids is None
            else [
                scored(rid, client_ids.get(rid), score) for rid, score in zip(res.report_ids, res.scores, strict=True)
            ],
        )
        if v is not None:
            views[res.job_id] = v
    for job_id, error in failures.items():
        v = view(
            job_id,
            status=JobStatus.FAILURE,
            model_name=None,
            model_version=None,
            predict_ms=None,
            error=error[:2000],
            reports=None,
        )
        if v is not None:
            views[job_id] = v
    return views


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
    rows: jobs_repo.FeatureRows,
    scores: np.ndarray,
    model: ServingModel,
    predict_ms: float,
    attempts: Mapping[str, int],
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
                attempt=attempts[job_id],
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
