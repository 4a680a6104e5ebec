"""Schemathesis against the app's own OpenAPI document, in-process over ASGI, with every check on.

Run alone with::

    .venv/bin/pytest tests/e2e/test_fuzz_openapi.py

Every operation is fuzzed with positive and negative data (``test_every_operation_conforms``), against a service
that enforces API keys and against one that runs open (no key created yet: ``..._while_the_service_runs_open``,
with the document such a service serves, which declares no key), and a state machine
follows the OpenAPI links from ``POST /predict`` / ``POST /submit`` to ``GET /task/{task_id}`` with the real task id
(``test_submit_then_read_task_statefully``). A failure here is a bug in the spec or in the code: fix one of them,
never the checks.

Each test (and each state-machine scenario) gets a fresh app on its own temporary SQLite file. The schema is loaded
once, at collection, from an app that is never started (building the OpenAPI document needs no store); requests
reach the current app through ``_Current``, whose lifespan Schemathesis runs on its own event loop and the test
shuts down.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from tempfile import gettempdir
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, CheckFunction, is_check_class, load_all_checks
from schemathesis.python import asgi
from starlette.types import ASGIApp, Receive, Scope, Send

from reportscore.api.auth import API_KEY_HEADER
from reportscore.app import create_app
from reportscore.security import keys
from reportscore.storage import migrate
from reportscore.storage.db import Database
from tests.conftest import make_settings

Case = schemathesis.Case[Any]

MAX_EXAMPLES = 30
"""Per operation (and state-machine scenarios): enough to find shape bugs, small enough for 2 shared cores."""

HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ replay store: every CI run starts from the same seeds
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

load_all_checks()
ALL_CHECKS: list[CheckFunction] = [
    check for name in CHECKS.get_all_names() if not is_check_class(check := CHECKS.get_one(name))
]
"""Every check Schemathesis ships (positive_data_acceptance, negative_data_rejection, ignored_auth, …)."""


class _Current:
    """The app under test of the running test and its API key (set by the ``app`` fixture)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.key: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("no app under test: use the `app` fixture")
        await self.app(scope, receive, send)


CURRENT = _Current()
NEVER_STARTED = create_app(make_settings(Path(gettempdir()) / "never-started"))
schema = schemathesis.openapi.from_dict(NEVER_STARTED.openapi())
schema.app = CURRENT
open_schema = schemathesis.openapi.from_dict(NEVER_STARTED.openapi_document(keys_required=False))
"""What an open service serves as /openapi.json (tests/e2e/test_openapi_truth.py checks it is)."""
open_schema.app = CURRENT


@schema.auth(refresh_interval=None)
class CurrentApiKey:
    """The test's API key, through Schemathesis' auth seam: it knows the key is the real credential, leaves it out
    of negative cases that test a missing key, and ``ignored_auth`` probes without it and with a wrong one."""

    def get(self, case: Case, context: schemathesis.AuthContext) -> str | None:
        return CURRENT.key

    def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers[API_KEY_HEADER] = data


def _start(directory: Path, *, with_key: bool = True) -> ASGIApp:
    """A fresh app under test (temporary SQLite in ``directory``, bundled model, model routes included); its lifespan
    starts with the first request. ``with_key``: the store holds one API key with every scope, and as once a key
    exists, every protected route needs one; otherwise the app runs open (it is bound to loopback)."""
    if with_key:
        db = Database.from_settings(make_settings(directory))
        try:
            migrate.upgrade_to_head(db)
            CURRENT.key, _ = keys.create_key(db=db, tenant="fuzz", name="fuzz", scopes=list(keys.SCOPES))
        finally:
            db.dispose()
    CURRENT.app = create_app(make_settings(directory))
    return CURRENT.app


def _stop() -> None:
    asgi.shutdown_lifespans()
    CURRENT.app = None
    CURRENT.key = None


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ASGIApp]:
    """A fresh app for the test, stopped after it."""
    try:
        yield _start(tmp_path)
    finally:
        _stop()


@pytest.fixture
def open_app(tmp_path: Path) -> Iterator[ASGIApp]:
    """A fresh app that runs open (no key created yet), stopped after the test."""
    try:
        yield _start(tmp_path, with_key=False)
    finally:
        _stop()


POSITIVE_DATA_ACCEPTANCE = CHECKS.get_one("positive_data_acceptance")


def _artifact_rejected(case: Case, response: schemathesis.Response) -> bool:
    """``POST /models`` (or ``/models/remote``) answered 422 with the registry's reason (not FastAPI's field errors).

    No schema can say "a loadable model artifact": generated bytes are schema-valid yet never a model (nor is a
    generated URL a V2 endpoint), and the registry rightly refuses them. Only for that answer is
    positive_data_acceptance skipped; every other check still runs, and a real artifact's 201 is tested in
    tests/e2e/test_model_registry.py (a remote model's in tests/unit/test_format_remote_v2.py).
    """
    if case.operation.label not in ("POST /models", "POST /models/remote") or response.status_code != 422:
        return False
    return isinstance(response.json().get("detail"), str)


def _call_and_check(case: Case) -> None:
    response = case.call()
    checks = [c for c in ALL_CHECKS if c is not POSITIVE_DATA_ACCEPTANCE or not _artifact_rejected(case, response)]
    case.validate_response(response, checks=checks)


@schema.parametrize()
@HYPOTHESIS
def test_every_operation_conforms(case: Case, app: ASGIApp) -> None:
    _call_and_check(case)


@open_schema.parametrize()
@HYPOTHESIS
def test_every_operation_conforms_while_the_service_runs_open(case: Case, open_app: ASGIApp) -> None:
    """ignored_auth included: the document an open service serves asks for no key, so answering without one is
    what it promises. (A generated ``POST /keys`` creates the first key: from then on the app rightly answers 401,
    a documented answer.)"""
    _call_and_check(case)


def test_submit_then_read_task_statefully(tmp_path: Path) -> None:
    """Every operation, following every link. Each scenario gets a fresh app: a scenario may revoke the test's key
    (the ``GET /keys`` → ``DELETE /keys/{prefix}`` link), after which that app rightly answers 401 to everything
    (once a key was created it never runs open again), and Hypothesis needs scenarios that replay alike."""
    reads: list[int] = []
    scenarios = iter(range(1_000_000))

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            _start(tmp_path / f"scenario-{next(scenarios)}")

        def teardown(self) -> None:
            _stop()

        def after_call(self, response: schemathesis.Response, case: Case) -> None:
            if case.operation.path == "/task/{task_id}" and response.status_code in (200, 202):
                reads.append(response.status_code)

        def validate_response(
            self, response: schemathesis.Response, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=ALL_CHECKS, transport_kwargs=kwargs)

    Machine.run(settings=settings(HYPOTHESIS, stateful_step_count=6))
    assert reads, "the state machine never read a submitted task through the link"
