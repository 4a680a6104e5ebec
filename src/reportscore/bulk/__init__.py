"""Bulk scoring of report files (CSV, Parquet, JSON Lines): ``reportscore score-file``."""
