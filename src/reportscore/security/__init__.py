"""API keys and rate limits; the HTTP side lives in ``reportscore.api.auth``."""
