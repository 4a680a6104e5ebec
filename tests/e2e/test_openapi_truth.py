"""The OpenAPI document a running service serves tells the truth: it declares the API key exactly while keys are
enforced, and ``POST /models`` documents every way it refuses an upload, as the service really answers them."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import jsonschema

from reportscore.api.auth import API_KEY_HEADER, MONITORING, ROUTE_SCOPES
from reportscore.app import create_app
from tests.conftest import make_settings
from tests.e2e.conftest import app_client
from tests.servers import ServiceProcess, run_cli

MAX_BODY_BYTES = 65_536


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def assert_runs_open(spec: dict[str, Any]) -> None:
    """No operation asks for a key, and no key scheme is offered."""
    assert "securitySchemes" not in spec.get("components", {})
    assert not [f"{m} {p}" for m, p, op in _operations(spec) if "security" in op]
    assert "runs open" in spec["info"]["description"]


def assert_requires_keys(spec: dict[str, Any]) -> None:
    """Every protected operation (and only those) declares the API-key scheme (monitoring stays open: the default)."""
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == API_KEY_HEADER
    for method, path, op in _operations(spec):
        declared = op.get("security") == [{"ApiKey": []}]
        assert declared == (ROUTE_SCOPES[(method, path)] not in (None, MONITORING)), f"{method} {path}"
    assert "runs open" not in spec["info"]["description"]


def test_a_running_service_documents_the_key_exactly_while_keys_are_enforced(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with (
        ServiceProcess(data_dir, env={"REPORTSCORE_AUTH_CACHE_S": "0.2"}) as service,
        httpx.Client(base_url=service.url, timeout=10) as http,
    ):
        assert_runs_open(http.get("/openapi.json").json())
        assert http.get("/models").status_code == 200  # what the document says: no key needed

        created = run_cli(
            ["keys", "create", "--tenant", "ops", "--name", "admin", "--scopes", "admin"],
            {"REPORTSCORE_DATA_DIR": str(data_dir)},
        )
        assert created.returncode == 0, created.stderr
        deadline = time.monotonic() + 10
        while "securitySchemes" not in (spec := http.get("/openapi.json").json()).get("components", {}):
            assert time.monotonic() < deadline, "the document still says the service runs open"
            time.sleep(0.05)
        assert_requires_keys(spec)
        assert http.get("/models").status_code == 401  # what the document now says
        assert http.get("/models", headers={API_KEY_HEADER: created.stdout.strip()}).status_code == 200


def test_the_document_follows_the_bind_address_and_insecure(tmp_path: Path) -> None:
    """Open only where the service really answers without a key; never-started apps describe the keyed service."""
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], None]]] = [
        ({}, assert_runs_open),
        ({"host": "0.0.0.0"}, assert_requires_keys),  # every protected route answers 401 until a key exists
        ({"host": "0.0.0.0", "insecure": True}, assert_runs_open),
    ]
    for i, (overrides, check) in enumerate(cases):
        with app_client(tmp_path / str(i), **overrides) as client:
            check(client.get("/openapi.json").json())
            assert (client.get("/models").status_code == 200) == (check is assert_runs_open), overrides
    assert_requires_keys(create_app(make_settings(tmp_path / "idle")).openapi())


def _refusals(reference_version: str) -> dict[str, dict[str, Any]]:
    """For each documented example of a refused upload, a request that the service refuses that way."""
    junk = b"not a model"
    return {
        "no boundary": {"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}},
        "version exists": {"data": {"version": reference_version}, "files": {"artifact": ("model.ubj", junk)}},
        "too large": {"data": {"version": "2.0.0"}, "files": {"artifact": ("model.ubj", b"x" * 2 * MAX_BODY_BYTES)}},
        "artifact rejected": {"data": {"version": "2.0.0"}, "files": {"artifact": ("model.ubj", junk)}},
        "unknown type": {"data": {"version": "2.0.0"}, "files": {"artifact": ("model.bin", junk)}},
        "schema rejected": {
            "data": {"version": "2.0.0"},
            "files": {"artifact": ("model.ubj", junk), "schema": ("schema.json", b"{}")},
        },
        "invalid field": {"data": {"version": "1.1.0 beta"}, "files": {"artifact": ("model.ubj", junk)}},
    }


REPRODUCED_ELSEWHERE = {"store unreachable"}
"""Documented refusals that need a model store to fail: ``tests/e2e/test_model_store_s3.py`` answers them against
a store that does not answer, and checks the answer against this document."""


def _same_kind(real: Any, example: Any) -> bool:
    """The real answer is the documented one, up to what depends on the deployment or the framework's wording:
    numbers (the configured limit) and a library's own reason in parentheses."""
    if isinstance(real, str) and isinstance(example, str):
        return re.sub(r"\d+", "N", real.split(" (", 1)[0]) == re.sub(r"\d+", "N", example.split(" (", 1)[0])
    return bool(real == example)


def test_model_upload_refusals_are_documented_and_answered_as_documented(tmp_path: Path) -> None:
    env = {"REPORTSCORE_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
    with ServiceProcess(tmp_path / "data", env=env) as service, httpx.Client(base_url=service.url, timeout=30) as http:
        spec = http.get("/openapi.json").json()
        documented = spec["paths"]["/models"]["post"]["responses"]
        before = http.get("/models").json()
        examples = {
            name: (int(status), example["value"], response["content"]["application/json"]["schema"])
            for status, response in documented.items()
            if not status.startswith("2")
            for name, example in response.get("content", {}).get("application/json", {}).get("examples", {}).items()
        }
        assert {400, 409, 413, 422} <= {status for status, _, _ in examples.values()}
        refusals = _refusals(before["champion"])
        assert set(examples) == set(refusals) | REPRODUCED_ELSEWHERE, "every documented refusal is reproduced"
        for name, request in refusals.items():
            status, example, schema = examples[name]
            answer = http.post("/models", **request)
            assert answer.status_code == status, f"{name}: {answer.status_code} {answer.text}"
            for body in (example, answer.json()):
                jsonschema.Draft202012Validator({**schema, "components": spec["components"]}).validate(body)
            assert _same_kind(answer.json()["detail"], example["detail"]), f"{name}: {answer.text} vs {example}"
        assert http.get("/models").json() == before  # nothing was registered, the champion stays
