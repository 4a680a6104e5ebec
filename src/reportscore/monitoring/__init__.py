"""Monitoring: structured logs now; metrics and the dashboard come with the observability work."""
