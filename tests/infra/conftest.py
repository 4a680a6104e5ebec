"""Fixtures of the infrastructure tests."""

from tests.infra.runtime_env import runtime_venv  # noqa: F401
