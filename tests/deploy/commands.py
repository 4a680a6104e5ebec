"""What the deploy files (deploy/) may run, and what they are checked against.

``TESTED_COMMANDS`` are the process commands (program + subcommand) of the reportscore image that the integration
tests run for real. tests/deploy fails when a Dockerfile CMD, a compose ``command``/``healthcheck`` or a Kubernetes
``command``/``args``/exec probe runs anything of the reportscore image outside this set, and when a deployment stops
using one of them. Add a command here only together with the test that runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

TESTED_COMMANDS: frozenset[str] = frozenset(
    {
        "reportscore serve",
        "reportscore worker",
        "reportscore worker-ping",
        "reportscore migrate",
        "reportscore flower",
    }
)

# HTTP probes (port, path) of the reportscore image: the API's health endpoints (tested by the e2e suite) and Flower's
# own unauthenticated /healthcheck (Flower's code, not ours).
TESTED_HTTP_PROBES: frozenset[tuple[int, str]] = frozenset(
    {(8081, "/health/live"), (8081, "/health/ready"), (5555, "/healthcheck")}
)

# Programs of the third-party images (redis:7, postgres:16) that compose runs as a command or a healthcheck.
THIRD_PARTY_PROGRAMS: frozenset[str] = frozenset({"redis-server", "redis-cli", "pg_isready"})


def command_key(argv: Sequence[str]) -> str:
    """``["reportscore", "serve", "--port", "8081"]`` -> ``"reportscore serve"``."""
    return " ".join(argv[:2])
