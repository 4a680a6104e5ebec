"""Monitoring: structured logs, Prometheus metrics (multiprocess-aware) and the built-in dashboard page."""
