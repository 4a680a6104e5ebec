"""HTTP API: thin routes, pydantic schemas, dependencies and middleware."""
