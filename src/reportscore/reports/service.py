"""Re-exports :mod:`reportscore.jobs.submission` for callers outside the package that still import it from here."""

from reportscore.jobs.submission import IdempotencyConflict, Submission, Submitted, submission, submit_job

__all__ = ["IdempotencyConflict", "Submission", "Submitted", "submission", "submit_job"]
