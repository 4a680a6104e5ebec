"""Scoring: feature schema and encoding, model formats, the model registry and the scoring service."""
