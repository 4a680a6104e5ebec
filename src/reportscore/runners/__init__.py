"""Runners: how a committed job id reaches ``score_jobs`` (in-process threads now; Celery in distributed mode)."""
