"""Reports: ingest a batch as a durable job, and read a job back."""
