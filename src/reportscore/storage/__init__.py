"""Storage: engines and sessions, ORM models, repositories (all SQL lives there) and Alembic migrations."""
