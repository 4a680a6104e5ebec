"""What an operator and a data scientist do with a running deployment, checked against the container stand-ins.

Shared by the compose and the Kubernetes stand-in tests: make the first admin key with the documented one-off
command, register a model version over HTTP, promote it, and see every worker process switch to it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np

from reportscore.scoring.features import FeatureSchema
from tests.deploy.standin import ContainerProcess
from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.model_helpers import tiny_xgboost

NEW_VERSION = "2.0.0"
KEY_HEADER = "X-API-Key"
FIRST_ADMIN_KEY_ARGV = [
    "reportscore",
    "keys",
    "create",
    "--tenant",
    "ops",
    "--name",
    "first-admin",
    "--scopes",
    "admin",
]
"""The documented first-admin-key step (deploy/README.md), run in a one-off container of the API's image and
configuration (``docker compose exec api ...`` / ``kubectl exec deploy/reportscore-api -- ...``)."""

_KEY_LINE = re.compile(r"^(rsk_[0-9a-f]{12}_[A-Za-z0-9_-]{32,128})$", re.MULTILINE)


def key_from_output(output: str) -> str:
    """The key ``reportscore keys create`` printed (alone on a line of stdout)."""
    found = _KEY_LINE.findall(output)
    assert len(found) == 1, f"expected one key in the output:\n{output[-3000:]}"
    return str(found[0])


def log_records(process: ContainerProcess) -> list[dict[str, Any]]:
    """The JSON log lines of a process (REPORTSCORE_LOG_FORMAT=json); other lines are skipped."""
    out: list[dict[str, Any]] = []
    for line in process.logs().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def count_records(process: ContainerProcess, msg: str, **fields: str) -> int:
    return sum(
        1
        for record in log_records(process)
        if record.get("msg") == msg and all(record.get(k) == v for k, v in fields.items())
    )


def wait_worker_ready(worker: ContainerProcess, *, concurrency: int, version: str | None = None) -> None:
    """Every pool process loaded a model (``version`` when given) and Celery consumes."""
    fields = {"model_version": version} if version else {}
    worker.wait_for(
        f"{concurrency} pool processes ready" + (f" on {version}" if version else ""),
        lambda: count_records(worker, "worker process ready", **fields) >= concurrency and "ready." in worker.logs(),
        timeout_s=180,
    )


def wait_http_ok(process: ContainerProcess, url: str, *, timeout_s: float = 180) -> None:
    def ok() -> bool:
        try:
            return httpx.get(url, timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    process.wait_for(f"200 from {url}", ok, timeout_s=timeout_s)


def register_and_promote(api_url: str, admin_key: str, work_dir: Path) -> Any:
    """Upload a new XGBoost version over HTTP and promote it; returns the classifier to compare scores with."""
    artifact = work_dir / "candidate.ubj"
    clf = tiny_xgboost(artifact)
    headers = {KEY_HEADER: admin_key}
    with artifact.open("rb") as fh:
        created = httpx.post(
            f"{api_url}/models",
            data={"version": NEW_VERSION},
            files={"artifact": ("candidate.ubj", fh)},
            headers=headers,
            timeout=120,
        )
    assert created.status_code == 201, created.text
    promoted = httpx.post(f"{api_url}/models/{NEW_VERSION}/promote", headers=headers, timeout=30)
    assert promoted.status_code == 200, promoted.text
    return clf


def wait_every_worker_switched(workers: list[ContainerProcess], *, concurrency: int, since: list[int]) -> None:
    """Each worker's pool processes log the switch to the new version (checked every REPORTSCORE_MODEL_REFRESH_S);
    fails at once with the worker's own reason when one cannot load it."""
    for worker, before in zip(workers, since, strict=True):

        def switched(worker: ContainerProcess = worker, before: int = before) -> bool:
            failed = [
                r
                for r in log_records(worker)
                if r.get("msg", "").startswith("new champion failed to load") and r.get("model_version") == NEW_VERSION
            ]
            assert not failed, f"{worker.container.name} could not load {NEW_VERSION}: {failed[0]}"
            return count_records(worker, "champion switched", model_version=NEW_VERSION) - before >= concurrency

        worker.wait_for(f"switch of every pool process to {NEW_VERSION}", switched, timeout_s=120)


def check_jobs_scored_with_new_version(api_url: str, client_key: str, clf: Any, *, jobs: int = 8) -> None:
    """Jobs submitted through the API are answered by the workers with the new version's scores."""
    headers = {KEY_HEADER: client_key}
    expected = clf.predict_proba(FeatureSchema.default().encode_reports(POC_EXAMPLE))[:, 1]
    task_ids = []
    for _ in range(jobs):
        accepted = httpx.post(f"{api_url}/predict", json=POC_EXAMPLE, headers=headers, timeout=30)
        assert accepted.status_code == 202, accepted.text
        task_ids.append(accepted.json()["task_id"])
    for task_id in task_ids:
        deadline = time.monotonic() + 60
        while True:
            task = httpx.get(f"{api_url}/task/{task_id}", params={"wait": 10}, headers=headers, timeout=30)
            if task.status_code == 200 or time.monotonic() > deadline:
                break
        body = task.json()
        assert task.status_code == 200, body
        assert body["status"] == "SUCCESS", body
        assert body["model"]["version"] == NEW_VERSION, body
        np.testing.assert_allclose(body["score"], expected, atol=1e-6)


def champion_over_http(api_url: str, admin_key: str) -> str:
    listed = httpx.get(f"{api_url}/models", headers={KEY_HEADER: admin_key}, timeout=30)
    assert listed.status_code == 200, listed.text
    return str(listed.json()["champion"])
