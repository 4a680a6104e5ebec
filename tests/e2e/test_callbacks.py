"""Push callbacks, embedded deployment: the object form of the body, the SSRF guard, and real signed
deliveries from a running ``reportscore serve`` to a real receiver, through retries, give-ups and a ``kill -9``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reportscore.storage.models import CallbackDelivery, Job, Report
from tests.callback_receiver import SECRET, Receiver, callback_env, documented_verify
from tests.e2e.conftest import app_client, state_of
from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.servers import ServiceProcess

pytestmark = [pytest.mark.e2e]

CALLBACK_SETTINGS: dict[str, Any] = {
    "callbacks_enabled": True,
    "callback_secret": SECRET,
    "callback_allow_private_networks": ["127.0.0.1/32"],
}


def _counts(client: TestClient) -> tuple[int, int, int]:
    with state_of(client).db.read() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Job)) or 0),
            int(s.scalar(select(func.count()).select_from(Report)) or 0),
            int(s.scalar(select(func.count()).select_from(CallbackDelivery)) or 0),
        )


def wait_callback(
    base_url: str, task_id: str, status: str, *, attempts: int = 0, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Poll ``GET /task/{id}`` until its ``callback`` has this status (and at least ``attempts`` recorded
    attempts); returns the task's JSON."""
    deadline = time.monotonic() + timeout_s
    data: dict[str, Any] = {}
    while time.monotonic() < deadline:
        data = httpx.get(f"{base_url}/task/{task_id}", params={"wait": 5}, timeout=10).json()
        callback = data.get("callback") or {}
        if callback.get("status") == status and callback.get("attempts", 0) >= attempts:
            return data
        time.sleep(0.05)
    raise AssertionError(f"callback of {task_id} not {status} after {attempts} attempts: {data}")


def assert_signed_result(delivery: Any, task: dict[str, Any]) -> None:
    """The delivery is the task's result (GET /task without ``callback``), signed as docs/callbacks.md says."""
    verify = documented_verify()
    assert verify(SECRET.encode(), delivery.headers, delivery.body)
    assert not verify(b"another-secret-of-enough-length", delivery.headers, delivery.body)
    assert not verify(SECRET.encode(), delivery.headers, delivery.body + b" ")
    assert delivery.headers["X-Reportscore-Task-Id"] == task["task_id"]
    assert delivery.headers["Content-Type"] == "application/json"
    assert orjson.loads(delivery.body) == {k: v for k, v in task.items() if k != "callback"}


# --- the object form and its validation (in-process app) ------------------------------------------------------


def test_object_form_is_accepted_and_the_list_form_is_unchanged(tmp_path: Path) -> None:
    with app_client(tmp_path, **CALLBACK_SETTINGS) as client:
        plain = client.post("/predict", json=POC_EXAMPLE)
        assert plain.status_code == 202
        done = client.get(f"/task/{plain.json()['task_id']}", params={"wait": 10}).json()
        assert done["status"] == "SUCCESS"
        assert "callback" not in done  # tasks without a callback read exactly as before
        # the object form without a callback_url is just the reports
        only_reports = client.post("/submit", json={"reports": POC_EXAMPLE})
        assert only_reports.status_code == 202, only_reports.text
        assert "callback" not in client.get(f"/task/{only_reports.json()['task_id']}", params={"wait": 10}).json()


def test_the_spec_offers_the_object_form_only_with_callbacks_enabled(tmp_path: Path) -> None:
    with app_client(tmp_path, **CALLBACK_SETTINGS) as client:
        spec = client.get("/openapi.json").json()
    for path in ("/predict", "/submit"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        list_form, object_form = body["schema"]["oneOf"]
        assert list_form["maxItems"] == 10_000
        assert object_form == {"$ref": "#/components/schemas/SubmitBody"}
        assert set(body["examples"]) == {"list", "object"}
    submit_body = spec["components"]["schemas"]["SubmitBody"]
    assert submit_body["examples"]
    assert "callback_url" in submit_body["properties"]


BAD_OBJECT_BODIES: dict[str, tuple[Any, list[Any]]] = {
    "object without reports": ({"abuse_type": "MSG"}, ["body", "reports"]),
    "bad report field": (
        {"reports": [POC_EXAMPLE[0], {**POC_EXAMPLE[1], "popularity": 7}], "callback_url": "https://example.com/"},
        ["body", "reports", 1, "popularity"],
    ),
    "unknown report field": ({"reports": [{**POC_EXAMPLE[0], "colour": "red"}]}, ["body", "reports", 0, "colour"]),
    "unknown key": ({"reports": POC_EXAMPLE, "callbak_url": "https://example.com/"}, ["body", "callbak_url"]),
    "empty reports": ({"reports": []}, ["body", "reports"]),
    "reports not a list": ({"reports": POC_EXAMPLE[0]}, ["body", "reports"]),
    "callback_url not a string": ({"reports": POC_EXAMPLE, "callback_url": 7}, ["body", "callback_url"]),
    "10,001 reports": ({"reports": [POC_EXAMPLE[0]] * 10_001}, ["body", "reports"]),
}


@pytest.mark.parametrize("case", list(BAD_OBJECT_BODIES))
def test_object_form_validation_errors_name_the_report_and_field(tmp_path: Path, case: str) -> None:
    body, loc = BAD_OBJECT_BODIES[case]
    with app_client(tmp_path, **CALLBACK_SETTINGS) as client:
        resp = client.post("/predict", json=body)
        assert resp.status_code == 422, resp.text
        assert any(e["loc"] == loc for e in resp.json()["detail"]), resp.json()
        assert _counts(client) == (0, 0, 0)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://127.0.0.2:9/", "loopback"),  # loopback, but outside the allow-listed 127.0.0.1/32
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:10.1.2.3]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://100.64.0.1/", "not publicly routable"),
        ("ftp://example.com/", "http:// or https://"),
        ("https://user:pw@example.com/", "credentials"),
        ("not a url", "http:// or https://"),
    ],
)
def test_callback_urls_to_non_public_addresses_are_refused_and_nothing_is_stored(
    tmp_path: Path, url: str, reason: str
) -> None:
    with app_client(tmp_path, **CALLBACK_SETTINGS) as client:
        resp = client.post("/submit", json={"reports": POC_EXAMPLE, "callback_url": url})
        assert resp.status_code == 422, resp.text
        (error,) = resp.json()["detail"]
        assert error["loc"] == ["body", "callback_url"]
        assert error["type"] == "callback_url_refused"
        assert reason in error["msg"]
        assert _counts(client) == (0, 0, 0)


def test_a_callback_url_with_nul_or_a_lone_surrogate_is_422(tmp_path: Path) -> None:
    with app_client(tmp_path, **CALLBACK_SETTINGS) as client:
        for bad in ("https://example.com/\\u0000", "https://example.com/\\ud800"):
            raw = json.dumps({"reports": POC_EXAMPLE, "callback_url": "PLACEHOLDER"}).replace("PLACEHOLDER", bad)
            resp = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
            assert resp.status_code == 422, (bad, resp.text)
            assert resp.json()["detail"][0]["loc"] == ["body", "callback_url"]
        assert _counts(client) == (0, 0, 0)


def test_allow_list_admits_private_networks_and_host_names(tmp_path: Path) -> None:
    allowed = {**CALLBACK_SETTINGS, "callback_allow_private_networks": ["10.0.0.0/8", "localhost"]}
    with app_client(tmp_path, **allowed) as client:
        for url in ("http://10.0.0.1/hook", "http://localhost:9/hook"):
            assert client.post("/predict", json={"reports": POC_EXAMPLE, "callback_url": url}).status_code == 202
        refused = client.post("/predict", json={"reports": POC_EXAMPLE, "callback_url": "http://169.254.169.254/"})
        assert refused.status_code == 422


def test_a_callback_url_is_refused_while_callbacks_are_disabled(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        url = "https://example.com/hook"
        resp = client.post("/predict", json={"reports": POC_EXAMPLE, "callback_url": url})
        assert resp.status_code == 422
        (error,) = resp.json()["detail"]
        assert error["type"] == "callbacks_disabled"
        assert error["loc"] == ["body", "callback_url"]
        assert error["input"] == url
        assert "REPORTSCORE_CALLBACKS_ENABLED" in error["msg"]
        # the object form without a callback_url is refused too: the body is the list while callbacks are off
        only_reports = client.post("/submit", json={"reports": POC_EXAMPLE})
        assert only_reports.status_code == 422
        (error,) = only_reports.json()["detail"]
        assert (error["type"], error["loc"]) == ("callbacks_disabled", ["body"])
        assert _counts(client) == (0, 0, 0)


def test_idempotency_key_covers_the_callback_url(tmp_path: Path) -> None:
    with app_client(tmp_path, **CALLBACK_SETTINGS) as client:
        headers = {"Idempotency-Key": "k-1"}
        body = {"reports": POC_EXAMPLE, "callback_url": "http://127.0.0.1:9/a"}
        first = client.post("/predict", json=body, headers=headers)
        again = client.post("/predict", json=body, headers=headers)
        assert first.json()["task_id"] == again.json()["task_id"]
        other = client.post("/predict", json={**body, "callback_url": "http://127.0.0.1:9/b"}, headers=headers)
        assert other.status_code == 409
        assert "Idempotency-Key" in other.json()["detail"]


# --- real deliveries from a running service --------------------------------------------------------------------


def _submit(base_url: str, callback_url: str, reports: list[dict[str, Any]] | None = None) -> str:
    resp = httpx.post(
        f"{base_url}/predict", json={"reports": reports or POC_EXAMPLE, "callback_url": callback_url}, timeout=30
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["task_id"])


def test_callback_is_retried_after_two_failures_then_delivered_signed(tmp_path: Path) -> None:
    with Receiver([500, 500]) as receiver, ServiceProcess(tmp_path / "data", env=callback_env()) as service:
        task_id = _submit(service.url, receiver.url)
        deliveries = receiver.wait_for(task_id, 3)
        task = wait_callback(service.url, task_id, "delivered")
        time.sleep(1.0)  # nothing more arrives once delivered
        deliveries = receiver.for_task(task_id)
        assert [d.status for d in deliveries] == [500, 500, 200]
        assert [d.headers["X-Reportscore-Attempt"] for d in deliveries] == ["1", "2", "3"]
        assert all(d.path == "/hooks/reportscore" for d in deliveries)
        assert deliveries[1].at - deliveries[0].at >= 0.1  # backoff: base 0.2 s with jitter (at least half)
        assert task["status"] == "SUCCESS"
        assert task["callback"]["attempts"] == 3
        assert task["callback"]["last_status_code"] == 200
        assert task["callback"]["last_error"] is None
        for delivery in deliveries:
            assert_signed_result(delivery, task)
        metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
        assert 'reportscore_callback_deliveries_total{outcome="retry"} 2.0' in metrics
        assert 'reportscore_callback_deliveries_total{outcome="delivered"} 1.0' in metrics


def test_callback_is_marked_failed_after_the_maximum_attempts(tmp_path: Path) -> None:
    env = callback_env(REPORTSCORE_CALLBACK_MAX_ATTEMPTS="3")
    with Receiver(default=503) as receiver, ServiceProcess(tmp_path / "data", env=env) as service:
        task_id = _submit(service.url, receiver.url)
        task = wait_callback(service.url, task_id, "failed")
        time.sleep(1.0)
        assert len(receiver.for_task(task_id)) == 3
        assert task["callback"]["attempts"] == 3
        assert task["callback"]["last_status_code"] == 503
        assert task["callback"]["last_error"] == "receiver answered HTTP 503"
        assert task["callback"]["finished_at"] is not None


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    env = callback_env(REPORTSCORE_CALLBACK_MAX_ATTEMPTS="2")
    with Receiver(default=307) as receiver, ServiceProcess(tmp_path / "data", env=env) as service:
        task_id = _submit(service.url, receiver.url)
        task = wait_callback(service.url, task_id, "failed")
        assert "redirects are not followed" in task["callback"]["last_error"]
        assert [r.path for r in receiver.received] == ["/hooks/reportscore"] * 2  # never /elsewhere


@pytest.mark.slow
def test_callback_survives_kill_9_and_is_delivered_after_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = callback_env(REPORTSCORE_CALLBACK_MAX_ATTEMPTS="50")
    with Receiver(default=500) as receiver:
        service = ServiceProcess(data_dir, env=env).start()
        try:
            task_id = _submit(service.url, receiver.url)
            receiver.wait_for(task_id, 2)  # failing: the delivery is pending in the outbox
            # Killed once two failed attempts are recorded (not merely received: the record comes just after).
            wait_callback(service.url, task_id, "pending", attempts=2)
            service.kill()
        finally:
            service.stop()
        before = len(receiver.for_task(task_id))
        receiver.default = 200  # the receiver comes back while the service is down
        with ServiceProcess(data_dir, env=env) as restarted:
            task = wait_callback(restarted.url, task_id, "delivered")
        deliveries = receiver.for_task(task_id)
        assert deliveries[-1].status == 200
        assert len(deliveries) > before
        assert task["callback"]["attempts"] >= 3
        assert_signed_result(deliveries[-1], task)


def test_failed_jobs_are_called_back_too(tmp_path: Path) -> None:
    with Receiver() as receiver, app_client(tmp_path, **CALLBACK_SETTINGS, callback_poll_interval_s=0.05) as client:
        from tests.fakes import FakeModel, fake_serving_model

        state_of(client).registry.swap(fake_serving_model(FakeModel(nan=True)))
        task_id = client.post("/predict", json={"reports": POC_EXAMPLE, "callback_url": receiver.url}).json()["task_id"]
        (delivery,) = receiver.wait_for(task_id, 1)
        deadline = time.monotonic() + 10
        task = client.get(f"/task/{task_id}").json()
        while task["callback"]["status"] != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
            task = client.get(f"/task/{task_id}").json()
        assert task["status"] == "FAILURE"
        assert task["callback"]["status"] == "delivered"
        assert_signed_result(delivery, task)
