"""The Celery task names (the API process publishes them, the worker registers them)."""

SCORE_TASK = "scoring.score_job"
"""One job id per message (the reconciler's re-publishes, and what an older API process sends)."""
SCORE_JOBS_TASK = "scoring.score_jobs"
"""Several job ids per message: the jobs an API process committed together (see ``CeleryRunner``)."""
