"""API keys and rate limits (issue 8); the HTTP side lives in ``reportscore.api.auth``."""
