"""Jobs and their reports, by concern: ``insert``, ``claim``, ``results`` and ``reads``; the report's fields are
declared once in ``fields``, and the writes that differ by database live in one writer per dialect
(``sqlite_writer``, ``postgres_writer``), which the ``Database`` picks once."""

from reportscore.storage.repositories.jobs.claim import (
    Claim,
    ClaimedJob,
    claim_jobs,
    claimed_jobs,
    find_stranded,
    mark_enqueued,
    release_started,
    renew_leases,
    try_exclusive_pass,
)
from reportscore.storage.repositories.jobs.fields import REPORT_COLUMNS, FeatureRows, feature_rows
from reportscore.storage.repositories.jobs.insert import (
    find_by_idempotency_key,
    insert_job,
    insert_jobs,
    insert_scored_jobs,
    release_idempotency_key,
)
from reportscore.storage.repositories.jobs.reads import (
    JobRow,
    ScoredReport,
    count_unfinished,
    get_job,
    get_job_reports,
    get_job_row,
    list_unfinished,
    load_features,
)
from reportscore.storage.repositories.jobs.results import JobResult, save_failure, save_results
from reportscore.storage.repositories.jobs.writer import NewJob, ScoredJob

__all__ = [
    "REPORT_COLUMNS",
    "Claim",
    "ClaimedJob",
    "FeatureRows",
    "JobResult",
    "JobRow",
    "NewJob",
    "ScoredJob",
    "ScoredReport",
    "claim_jobs",
    "claimed_jobs",
    "count_unfinished",
    "feature_rows",
    "find_by_idempotency_key",
    "find_stranded",
    "get_job",
    "get_job_reports",
    "get_job_row",
    "insert_job",
    "insert_jobs",
    "insert_scored_jobs",
    "list_unfinished",
    "load_features",
    "mark_enqueued",
    "release_idempotency_key",
    "release_started",
    "renew_leases",
    "save_failure",
    "save_results",
    "try_exclusive_pass",
]
