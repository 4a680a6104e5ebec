"""API keys on the real app: every route x every scope, tenant isolation, rate limits, revocation, open mode.

The route list comes from ``app.routes``: a route added later without an entry in ``auth.ROUTE_SCOPES`` fails
``test_every_route_is_classified`` (and its own row of the matrix).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from reportscore.api.auth import (
    API_KEY_HEADER,
    MONITORING,
    ROUTE_SCOPES,
    SCOPES,
    route_scope,
    scopes_markdown,
)
from reportscore.app import create_app
from reportscore.security import keys
from reportscore.settings import Settings
from reportscore.storage import migrate
from reportscore.storage.db import Database
from tests.conftest import make_settings
from tests.e2e.conftest import state_of

ROOT = Path(__file__).resolve().parents[2]
REPORT = {
    "abuse_type": "MSG",
    "report_text_len": 120,
    "profile_rating": 0.45,
    "popularity": 3,
    "lifetime_matches_created": 12,
}
PATH_VALUES = {"task_id": str(uuid.UUID(int=1)), "version": "0.0.0-absent", "prefix": "000000000000"}


def _routes(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path template, route) of every HTTP route the app serves."""
    out = []
    for route in iter_route_contexts(app.routes):  # included routers are resolved lazily: flatten them
        for method in sorted((route.methods or set()) - {"HEAD"}):
            out.append((method, str(route.path), route))
    return out


def _protected_app(tmp_path: Path, **overrides: Any) -> Any:
    return create_app(make_settings(tmp_path, protect_monitoring=True, **overrides))


ROUTES = [(m, p) for m, p, _ in _routes(_protected_app(Path("/nonexistent")))]  # create_app does no I/O


def _url(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    return path.replace("{name:path}", "dashboard.js")


@dataclass
class Keys:
    by_scope: dict[str, str]
    all_scopes: str
    other_tenant: str
    revoked: str
    wrong_secret: str


def _store_keys(settings: Settings) -> Keys:
    db = Database.from_settings(settings)
    try:
        migrate.upgrade_to_head(db)
        by_scope = {s: keys.create_key(db=db, tenant="t1", name=f"only-{s}", scopes=[s])[0] for s in SCOPES}
        all_scopes, _ = keys.create_key(db=db, tenant="t1", name="all", scopes=list(SCOPES))
        other, _ = keys.create_key(db=db, tenant="t2", name="other", scopes=list(SCOPES))
        revoked, view = keys.create_key(db=db, tenant="t1", name="revoked", scopes=list(SCOPES))
        assert keys.revoke_key(db=db, prefix=view.prefix)
    finally:
        db.dispose()
    prefix = keys.parse_prefix(all_scopes)
    return Keys(by_scope, all_scopes, other, revoked, wrong_secret=f"rsk_{prefix}_{'x' * 43}")


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Keys]]:
    tmp_path = tmp_path_factory.mktemp("auth")
    stored = _store_keys(make_settings(tmp_path))
    with TestClient(_protected_app(tmp_path)) as client:
        yield client, stored


def _call(client: TestClient, method: str, path: str, key: str | None) -> Any:
    headers = {} if key is None else {API_KEY_HEADER: key}
    body: Any = [] if method == "POST" else None  # past authentication, [] is a 422: nothing is changed
    return client.request(method, _url(path), headers=headers, json=body)


def test_every_route_is_classified() -> None:
    app = _protected_app(Path("/nonexistent"))
    unclassified = [f"{m} {p}" for m, p, _ in _routes(app) if (m, p) not in ROUTE_SCOPES]
    assert not unclassified, f"add these routes to reportscore.api.auth.ROUTE_SCOPES: {unclassified}"
    for method, path, route in _routes(app):
        assert route_scope(route) == ROUTE_SCOPES[(method, path)], f"{method} {path} enforces another scope"


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_route_answers_each_kind_of_key(protected: tuple[TestClient, Keys], method: str, path: str) -> None:
    client, stored = protected
    needed = ROUTE_SCOPES.get((method, path), "unclassified")
    assert needed != "unclassified", f"{method} {path} is not in ROUTE_SCOPES"
    if needed is None:
        assert _call(client, method, path, None).status_code not in (401, 403)
        return
    for label, key in {
        "missing": None,
        "empty": "",
        "malformed": "not-a-key",
        "wrong": keys.generate(),
        "wrong secret": stored.wrong_secret,
        "revoked": stored.revoked,
    }.items():
        resp = _call(client, method, path, key)
        assert resp.status_code == 401, f"{label} key: {resp.status_code} {resp.text}"
        assert resp.headers["www-authenticate"].startswith("ApiKey"), label
    for scope, key in stored.by_scope.items():
        resp = _call(client, method, path, key)
        allowed = scope == needed or (needed == MONITORING and scope == "admin")
        if allowed:
            assert resp.status_code not in (401, 403), f"{scope} key refused: {resp.text}"
        else:
            assert resp.status_code == 403, f"{scope} key on a {needed} route: {resp.status_code}"
            assert needed in resp.json()["detail"]
    for label, key in (("all scopes", stored.all_scopes), ("other tenant", stored.other_tenant)):
        assert _call(client, method, path, key).status_code not in (401, 403), label


def test_a_body_is_not_parsed_before_the_key_is_checked(protected: tuple[TestClient, Keys]) -> None:
    client, stored = protected
    for key in (None, "not-a-key", stored.revoked):
        headers = {"Content-Type": "application/json"} | ({} if key is None else {API_KEY_HEADER: key})
        resp = client.post("/predict", content=b"[{not json", headers=headers)
        assert resp.status_code == 401, resp.text
        assert resp.headers["www-authenticate"].startswith("ApiKey")
    json_headers = {"Content-Type": "application/json", API_KEY_HEADER: stored.all_scopes}
    bad_json = client.post("/predict", content=b"[{not json", headers=json_headers)
    assert bad_json.status_code == 422  # a valid key: on to parsing


def test_only_requests_for_a_protected_route_are_authenticated_before_the_body(tmp_path: Path) -> None:
    """A method or path that no protected route serves gets its normal 405 or 404, not the early 401; monitoring
    routes that are open (the default) stay open."""
    _store_keys(make_settings(tmp_path))
    with TestClient(create_app(make_settings(tmp_path))) as client:
        for method, path in (
            ("PUT", "/heartbeat"),
            ("POST", "/health/ready"),
            ("PUT", "/metrics"),
            ("PATCH", "/predict"),
        ):
            resp = client.request(method, path, json=[])
            assert resp.status_code == 405, f"{method} {path}: {resp.status_code} {resp.text}"
            assert "allow" in resp.headers
        assert client.post("/no/such/path", json=[]).status_code == 404
        assert client.post("/predict", json=[]).status_code == 401


def test_another_tenants_task_is_a_404_like_an_unknown_id(protected: tuple[TestClient, Keys]) -> None:
    client, stored = protected
    mine = {API_KEY_HEADER: stored.all_scopes}
    theirs = {API_KEY_HEADER: stored.other_tenant}
    task_id = client.post("/predict", json=[REPORT], headers=mine).json()["task_id"]
    assert uuid.UUID(task_id).version == 4
    assert client.get(f"/task/{task_id}", params={"wait": 10}, headers=mine).status_code == 200
    unknown = str(uuid.uuid4())
    for params in ({}, {"wait": 5}):
        t0 = time.monotonic()
        other = client.get(f"/task/{task_id}", params=params, headers=theirs)
        assert time.monotonic() - t0 < 2, "waited on a task the caller cannot see"
        missing = client.get(f"/task/{unknown}", params=params, headers=theirs)
        assert other.status_code == missing.status_code == 404
        assert other.text.replace(task_id, "ID") == missing.text.replace(unknown, "ID")
        assert sorted(other.headers.keys()) == sorted(missing.headers.keys())
    # /score's stored task too
    scored = client.post("/score", json=[REPORT], headers=mine).json()["task_id"]
    assert client.get(f"/task/{scored}", headers=theirs).status_code == 404
    assert client.get(f"/task/{scored}", headers=mine).status_code == 200


def test_the_access_log_names_the_tenant_and_key(
    protected: tuple[TestClient, Keys], caplog: pytest.LogCaptureFixture
) -> None:
    client, stored = protected
    with caplog.at_level(logging.INFO, logger="reportscore.access"):
        client.get(f"/task/{uuid.uuid4()}", headers={API_KEY_HEADER: stored.other_tenant})
    record = next(r for r in caplog.records if r.name == "reportscore.access")
    assert getattr(record, "tenant", None) == "t2"
    assert getattr(record, "key_id", None) == keys.parse_prefix(stored.other_tenant)
    assert stored.other_tenant not in caplog.text


def test_idempotency_keys_are_per_tenant(protected: tuple[TestClient, Keys]) -> None:
    client, stored = protected
    same = {"Idempotency-Key": "retry-1"}
    a1 = client.post("/predict", json=[REPORT], headers={**same, API_KEY_HEADER: stored.all_scopes}).json()
    a2 = client.post("/predict", json=[REPORT], headers={**same, API_KEY_HEADER: stored.all_scopes}).json()
    b = client.post("/predict", json=[REPORT], headers={**same, API_KEY_HEADER: stored.other_tenant}).json()
    assert a1["task_id"] == a2["task_id"] != b["task_id"]


def test_openapi_declares_the_api_key_scheme_per_operation(protected: tuple[TestClient, Keys]) -> None:
    client, _ = protected
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": spec["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            needed = ROUTE_SCOPES[(method.upper(), path)]
            assert (operation.get("security") == [{"ApiKey": []}]) == (needed is not None), f"{method} {path}"


def test_docs_list_every_route_and_its_scope() -> None:
    docs = (ROOT / "docs" / "security.md").read_text()
    assert scopes_markdown() in docs, "docs/security.md: paste reportscore.api.auth.scopes_markdown()"
    readme = (ROOT / "README.md").read_text()
    assert API_KEY_HEADER in readme
    assert "docs/security.md" in readme


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    db = Database.from_settings(settings)
    migrate.upgrade_to_head(db)
    key, _ = keys.create_key(db=db, tenant="t1", name="slow", scopes=["read"], rate=1, burst=2)
    free, _ = keys.create_key(db=db, tenant="t1", name="unlimited", scopes=["read"])
    db.dispose()
    url = f"/task/{uuid.uuid4()}"
    with TestClient(create_app(settings)) as client:
        assert [client.get(url, headers={API_KEY_HEADER: key}).status_code for _ in range(2)] == [404, 404]
        limited = client.get(url, headers={API_KEY_HEADER: key})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        assert all(client.get(url, headers={API_KEY_HEADER: free}).status_code == 404 for _ in range(20))
        # keys exist, but monitoring stays open unless REPORTSCORE_PROTECT_MONITORING
        assert client.get("/metrics").status_code == 200
        assert client.get("/dashboard/data").status_code == 200
        assert "security" not in client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
        time.sleep(1.05)
        assert client.get(url, headers={API_KEY_HEADER: key}).status_code == 404


def test_revocation_and_a_first_key_take_effect_within_the_cache_time(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, auth_cache_s=0.2))) as client:
        url = f"/task/{uuid.uuid4()}"
        assert client.get(url).status_code == 404  # no keys, loopback: open
        db = state_of(client).db
        key, view = keys.create_key(db=db, tenant="t1", name="k", scopes=["read"])
        time.sleep(0.3)
        assert client.get(url).status_code == 401
        assert client.get(url, headers={API_KEY_HEADER: key}).status_code == 404
        assert keys.revoke_key(db=db, prefix=view.prefix)
        time.sleep(0.3)
        assert client.get(url, headers={API_KEY_HEADER: key}).status_code == 401


def test_revoking_every_key_does_not_reopen_the_service(tmp_path: Path) -> None:
    """Open mode is only a fresh install's: once a key was created, the service needs keys even with all revoked."""
    with TestClient(create_app(make_settings(tmp_path, auth_cache_s=0.2))) as client:
        url = f"/task/{uuid.uuid4()}"
        db = state_of(client).db
        admin, admin_view = keys.create_key(db=db, tenant="t1", name="admin", scopes=["admin"])
        _, reader_view = keys.create_key(db=db, tenant="t1", name="reader", scopes=["read"])
        time.sleep(0.3)
        assert keys.revoke_key(db=db, prefix=reader_view.prefix)
        revoked = client.delete(f"/keys/{admin_view.prefix}", headers={API_KEY_HEADER: admin})  # the last key
        assert revoked.status_code == 204
        time.sleep(0.3)
        assert keys.list_keys(db=db) == []
        for headers in ({}, {API_KEY_HEADER: admin}):
            assert client.get(url, headers=headers).status_code == 401
            resp = client.post("/predict", json=[], headers=headers)
            assert resp.status_code == 401, resp.text
        assert keys.any_key_created(db=db)
        key, _ = keys.create_key(db=db, tenant="t1", name="new", scopes=["read"])
        time.sleep(0.3)
        assert client.get(url, headers={API_KEY_HEADER: key}).status_code == 404


def test_non_loopback_without_keys_refuses_protected_routes_unless_insecure(tmp_path: Path) -> None:
    url = f"/task/{uuid.uuid4()}"
    with TestClient(create_app(make_settings(tmp_path / "a", host="0.0.0.0"))) as client:
        refused = client.get(url)
        assert refused.status_code == 401
        assert "reportscore keys create" in refused.json()["detail"]
        assert client.get("/heartbeat").json() == {"message": "Service Ok"}
        assert client.get("/health/ready").status_code == 200
    with TestClient(create_app(make_settings(tmp_path / "b", host="0.0.0.0", insecure=True))) as client:
        assert client.get(url).status_code == 404


def test_bootstrap_key_is_stored_at_start_with_its_tenant_and_scopes(tmp_path: Path) -> None:
    key = keys.generate()
    settings = make_settings(tmp_path, bootstrap_api_key=key, bootstrap_api_key_tenant="moderation")
    for _ in range(2):  # a restart finds it stored and changes nothing
        with TestClient(create_app(settings)) as client:
            accepted = client.post("/predict", json=[REPORT], headers={API_KEY_HEADER: key})
            assert accepted.status_code == 202
            assert client.post("/predict", json=[REPORT]).status_code == 401
            assert client.get("/models", headers={API_KEY_HEADER: key}).status_code == 403  # no admin by default
            views = keys.list_keys(db=state_of(client).db)
    assert [(v.tenant, v.name, v.scopes) for v in views] == [
        ("moderation", "bootstrap", ("submit", "read", "feedback"))
    ]


def test_a_bootstrap_value_that_is_not_a_key_stops_the_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, bootstrap_api_key="change-me")
    with pytest.raises(keys.KeyError_, match="keys generate"), TestClient(create_app(settings)):
        pass


def test_keys_over_http_need_admin_and_show_the_secret_once(protected: tuple[TestClient, Keys]) -> None:
    client, stored = protected
    admin = {API_KEY_HEADER: stored.by_scope["admin"]}
    body = {"tenant": "t3", "name": "via-http", "scopes": ["read"], "rate": 5}
    assert client.post("/keys", json=body, headers={API_KEY_HEADER: stored.by_scope["read"]}).status_code == 403
    created = client.post("/keys", json=body, headers=admin)
    assert created.status_code == 201
    new_key, prefix = created.json()["key"], created.json()["prefix"]
    assert keys.parse_prefix(new_key) == prefix
    assert created.json()["burst"] == 5
    listed = client.get("/keys", params={"tenant": "t3"}, headers=admin)
    assert [k["prefix"] for k in listed.json()["keys"]] == [prefix]
    assert new_key not in listed.text
    assert "hash" not in listed.text
    assert client.get(f"/task/{uuid.uuid4()}", headers={API_KEY_HEADER: new_key}).status_code == 404
    assert client.delete(f"/keys/{prefix}", headers=admin).status_code == 204
    assert client.delete(f"/keys/{prefix}", headers=admin).status_code == 404
    assert client.post("/keys", json={**body, "scopes": ["root"]}, headers=admin).status_code == 422


def test_a_burst_needs_a_rate_and_key_text_is_clean(protected: tuple[TestClient, Keys]) -> None:
    """Both rules are in the schema (a with-rate and a without-rate body); errors carry no union tag."""
    client, stored = protected
    admin = {API_KEY_HEADER: stored.by_scope["admin"]}
    base = {"tenant": "t4", "name": "n", "scopes": ["read"]}
    for body in ({**base, "burst": 5}, {**base, "rate": None, "burst": 5}):
        resp = client.post("/keys", json=body, headers=admin)
        assert resp.status_code == 422, resp.text
        (error,) = resp.json()["detail"]
        assert (error["type"], error["loc"]) == ("burst_without_rate", ["body"])
        assert "burst needs a rate" in error["msg"]
    resp = client.post("/keys", json={**base, "rate": 5, "burst": 0}, headers=admin)
    assert [e["loc"] for e in resp.json()["detail"]] == [["body", "burst"]]
    resp = client.post("/keys", json={**base, "scopes": []}, headers=admin)
    assert [e["loc"] for e in resp.json()["detail"]] == [["body", "scopes"]]
    unlimited = client.post("/keys", json={**base, "rate": None}, headers=admin)
    assert unlimited.status_code == 201
    assert (unlimited.json()["rate"], unlimited.json()["burst"]) == (None, None)
    for field in ("tenant", "name"):
        for bad in ("a\\u0000b", "a\\ud800b", "\\udfff"):
            raw = json.dumps({**base, field: "PLACEHOLDER"}).replace("PLACEHOLDER", bad)
            resp = client.post("/keys", content=raw, headers={**admin, "Content-Type": "application/json"})
            assert resp.status_code == 422, (field, bad, resp.text)
            assert resp.json()["detail"][0]["loc"] == ["body", field]
    listed = client.get("/keys", params={"tenant": "a\x00b"}, headers=admin)
    assert listed.status_code == 422
    for not_a_prefix in ("a%00b", "ABCDEF012345", "0" * 13):
        assert client.delete(f"/keys/{not_a_prefix}", headers=admin).status_code == 422, not_a_prefix
    assert len(keys.list_keys(db=state_of(client).db, tenant="t4")) == 1  # only the unlimited key was created
