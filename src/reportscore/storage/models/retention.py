"""Indexes retention needs on tables declared elsewhere."""

from sqlalchemy import Index

from reportscore.storage.models.jobs import Job

# The maintenance pass finds expired idempotency keys without a scan.
Index("ix_jobs_idempotency_expires_at", Job.idempotency_expires_at)
