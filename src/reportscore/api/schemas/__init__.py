"""Request and response bodies (separate from the ORM models)."""
