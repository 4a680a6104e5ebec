"""Retention: ``reportscore purge`` removes old jobs in short bounded transactions, and the maintenance pass of every
API process forgets expired idempotency keys and removes delivered callbacks (docs/data-lifecycle.md)."""
