"""Ingest a batch of reports as one durable job (its unit of work, run by the group committer or on its own)."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reportscore.storage.db import Database
from reportscore.storage.repositories import drift as drift_repo
from reportscore.storage.repositories import jobs as jobs_repo


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with a different body."""


@dataclass(frozen=True)
class Submitted:
    job_id: str
    created: bool
    report_ids: list[int] | None = None
    """The new reports' ids, in order (when ``created``)."""


def request_fingerprint(reports: Sequence[Mapping[str, Any]], callback_url: str | None = None) -> str:
    """sha256 of the validated reports (and the callback URL, when one is given) in canonical JSON: key order and
    whitespace don't matter, and the list form of a body has the same fingerprint as before callbacks existed."""
    doc: Any = list(reports) if callback_url is None else {"reports": list(reports), "callback_url": callback_url}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def submit_job(
    *,
    db: Database,
    reports: Sequence[Mapping[str, Any]],
    owner: str,
    idempotency_key: str | None,
    idempotency_ttl_s: float,
    callback_url: str | None = None,
) -> Submitted:
    """Store a PENDING job with its reports in its own transaction (the API uses ``submit_in_session`` through the
    group committer instead)."""
    work = submission(
        reports=reports,
        owner=owner,
        idempotency_key=idempotency_key,
        ttl_s=idempotency_ttl_s,
        callback_url=callback_url,
    )
    for attempt in range(2):
        try:
            with db.write() as session:
                return work(session)
        except IntegrityError:
            # Two requests raced with the same key (PostgreSQL): the loser reads the winner's job.
            if idempotency_key is None or attempt == 1:
                raise
    raise AssertionError("unreachable")


def submission(
    *,
    reports: Sequence[Mapping[str, Any]],
    owner: str,
    idempotency_key: str | None,
    ttl_s: float,
    callback_url: str | None = None,
) -> Submission:
    """The unit of work that stores one submitted batch: ``work(session) -> Submitted``."""
    return Submission(
        reports=reports, owner=owner, idempotency_key=idempotency_key, ttl_s=ttl_s, callback_url=callback_url
    )


class Submission:
    """Stores one submitted batch: ``work(session) -> Submitted``.

    Submissions without an Idempotency-Key share a ``batch_key``: the group committer may run those of one group
    together (``run_batch``), which on PostgreSQL inserts all their jobs in one statement and all their reports in
    another instead of two statements each. Each still gets its own job id; the result is the same as running
    them one by one. Safe to run again (each run stores a new job, or finds the keyed one).
    """

    def __init__(
        self,
        *,
        reports: Sequence[Mapping[str, Any]],
        owner: str,
        idempotency_key: str | None,
        ttl_s: float,
        callback_url: str | None = None,
    ) -> None:
        self.reports = reports
        self.owner = owner
        self.idempotency_key = idempotency_key
        self.ttl_s = ttl_s
        self.callback_url = callback_url
        self.fingerprint = request_fingerprint(reports, callback_url) if idempotency_key else None
        self.batch_key: str | None = "submission" if idempotency_key is None else None

    def __call__(self, session: Session) -> Submitted:
        now = datetime.now(UTC)
        idempotency_key = self.idempotency_key
        if idempotency_key is not None:
            existing = jobs_repo.find_by_idempotency_key(session, owner=self.owner, key=idempotency_key)
            if existing is not None:
                expires_at = existing.idempotency_expires_at
                if expires_at is not None and expires_at > now:
                    if existing.request_sha256 != self.fingerprint:
                        raise IdempotencyConflict
                    return Submitted(job_id=existing.id, created=False)
                jobs_repo.release_idempotency_key(session, job_id=existing.id)
        job_id = str(uuid.uuid4())
        report_ids = jobs_repo.insert_job(
            session,
            job_id=job_id,
            owner=self.owner,
            reports=self.reports,
            created_at=now,
            idempotency_key=idempotency_key,
            request_sha256=self.fingerprint,
            idempotency_expires_at=now + timedelta(seconds=self.ttl_s) if idempotency_key else None,
            callback_url=self.callback_url,
        )
        return Submitted(job_id=job_id, created=True, report_ids=report_ids)

    @staticmethod
    def run_batch(session: Session, works: Sequence[Submission]) -> list[Submitted]:
        """Run several submissions without a key in the caller's transaction; results in the same order."""
        if len(works) == 1:
            return [work(session) for work in works]
        jobs = [
            jobs_repo.NewJob(job_id=str(uuid.uuid4()), owner=w.owner, reports=w.reports, callback_url=w.callback_url)
            for w in works
        ]
        ids = jobs_repo.insert_jobs(session, jobs=jobs, created_at=datetime.now(UTC))
        return [Submitted(job_id=job.job_id, created=True, report_ids=ids[job.job_id]) for job in jobs]


def handover(submitted: Submitted, reports: Sequence[Mapping[str, Any]]) -> jobs_repo.FeatureRows | None:
    """A new job's reports as committed, for a runner in this process (so it need not read them back)."""
    if not submitted.created or submitted.report_ids is None:
        return None
    return jobs_repo.feature_rows(submitted.job_id, submitted.report_ids, reports)


CountDrift = Callable[[Mapping[str, Sequence[Any]], Sequence[float], datetime], Mapping[drift_repo.BinKey, int]]
"""The drift histogram counts of scored reports (their feature columns, their scores, when they were scored): the
drift service's counting bound to the version that scored them."""


def scored_submission(
    *,
    reports: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    owner: str,
    model_name: str,
    model_version: str,
    predict_ms: float,
    received_at: datetime,
    count_drift: CountDrift | None = None,
) -> ScoredSubmission:
    """The unit of work that stores a synchronously scored batch (``POST /score``) as a finished job (and adds its
    drift counts, from ``count_drift``, to the drift histograms in the same transaction): ``work(session) -> job
    id``."""
    return ScoredSubmission(
        reports=reports,
        scores=scores,
        owner=owner,
        model_name=model_name,
        model_version=model_version,
        predict_ms=predict_ms,
        received_at=received_at,
        count_drift=count_drift,
    )


@dataclass(frozen=True)
class ScoredSubmission:
    """Stores one scored batch as a finished job: ``work(session) -> job id``.

    The group committer runs those of one group together (``run_batch``): their jobs, reports and scores are
    inserted in a few statements for the whole group (each job as it would be alone), and the drift counts of all
    of them are counted once per version over their reports together and added in one UPSERT (counting has a fixed
    cost per call that dominated small requests, and the batches of one window share most bins, so a group writes
    each bin once instead of once per request)."""

    reports: Sequence[Mapping[str, Any]]
    scores: Sequence[float]
    owner: str
    model_name: str
    model_version: str
    predict_ms: float
    received_at: datetime
    count_drift: CountDrift | None = None
    batch_key: str = "scored"

    def __call__(self, session: Session) -> str:
        return self.run_batch(session, [self])[0]

    @staticmethod
    def run_batch(session: Session, works: Sequence[ScoredSubmission]) -> list[str]:
        """Run several scored submissions in the caller's transaction; their job ids in the same order."""
        finished_at = datetime.now(UTC)
        jobs = [
            jobs_repo.ScoredJob(
                job_id=str(uuid.uuid4()),
                owner=work.owner,
                reports=work.reports,
                scores=work.scores,
                model_name=work.model_name,
                model_version=work.model_version,
                predict_ms=work.predict_ms,
                created_at=work.received_at,
            )
            for work in works
        ]
        jobs_repo.insert_scored_jobs(session, jobs=jobs, finished_at=finished_at)
        by_version: dict[tuple[str, str], list[ScoredSubmission]] = {}
        for work in works:
            if work.count_drift is not None:
                by_version.setdefault((work.model_name, work.model_version), []).append(work)
        merged: Counter[drift_repo.BinKey] = Counter()
        for group in by_version.values():
            count = group[0].count_drift
            assert count is not None
            columns = {name: [r[name] for w in group for r in w.reports] for name in jobs_repo.REPORT_COLUMNS}
            merged.update(count(columns, [s for w in group for s in w.scores], finished_at))
        drift_repo.add_counts(session, merged)
        return [job.job_id for job in jobs]
