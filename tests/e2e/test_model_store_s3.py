"""The service with its model store in a bucket (moto's S3 server, started by the test session): a version
registered over HTTP lands in the bucket, a promotion reaches the running API, and a fresh process with an empty
cache serves it from the bucket."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest

from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.object_store import MANIFEST
from tests.e2e.conftest import app_client
from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.infra.s3server import S3Server
from tests.model_helpers import tiny_xgboost
from tests.servers import ServiceProcess, free_port

pytestmark = [pytest.mark.e2e]

VERSION_KEY = "models/reportscore-reference/2.0.0"


def _score_until(http: httpx.Client, version: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        answer: dict[str, Any] = http.post("/score", params={"persist": "false"}, json=POC_EXAMPLE).json()
        if answer["model"]["version"] == version:
            return answer
        assert time.monotonic() < deadline, f"{version} never started serving"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_registered_over_http_into_the_bucket_promoted_live_and_loaded_by_a_fresh_process(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    clf = tiny_xgboost(tmp_path / "next.ubj")
    expected = clf.predict_proba(FeatureSchema.default().encode_reports(POC_EXAMPLE))[:, 1]
    env = {
        **s3_server.store_env(bucket),
        "REPORTSCORE_MODEL_REFRESH_S": "0.3",
        "REPORTSCORE_MODEL_CACHE_DIR": str(tmp_path / "cache-first"),
    }
    with ServiceProcess(tmp_path / "data", env=env) as service, httpx.Client(base_url=service.url, timeout=30) as http:
        assert _score_until(http, "1.0.0")["model"]["version"] == "1.0.0"
        with (tmp_path / "next.ubj").open("rb") as fh:
            created = http.post("/models", data={"version": "2.0.0"}, files={"artifact": ("next.ubj", fh)})
        assert created.status_code == 201, created.text
        assert f"{VERSION_KEY}/model.ubj" in s3_server.keys(bucket)
        assert f"{VERSION_KEY}/{MANIFEST}" in s3_server.keys(bucket)

        assert http.post("/models/2.0.0/promote").json()["is_champion"] is True
        np.testing.assert_allclose(_score_until(http, "2.0.0")["score"], expected, atol=1e-6)
        task = http.get(f"/task/{http.post('/predict', json=POC_EXAMPLE).json()['task_id']}?wait=20").json()
        assert task["status"] == "SUCCESS"
        assert task["model"]["version"] == "2.0.0"
        np.testing.assert_allclose(task["score"], expected, atol=1e-6)
    assert (tmp_path / "cache-first" / bucket / VERSION_KEY / MANIFEST).is_file()

    # Another process, same registry, nothing cached: it fetches the champion from the bucket before it is ready.
    fresh_cache = tmp_path / "cache-second"
    env["REPORTSCORE_MODEL_CACHE_DIR"] = str(fresh_cache)
    with ServiceProcess(tmp_path / "data", env=env) as second, httpx.Client(base_url=second.url, timeout=30) as http:
        answer = http.post("/score", params={"persist": "false"}, json=POC_EXAMPLE).json()
        assert answer["model"]["version"] == "2.0.0"
        np.testing.assert_allclose(answer["score"], expected, atol=1e-6)
    assert (fresh_cache / bucket / VERSION_KEY / "model.ubj").is_file()


def test_an_upload_to_an_unreachable_store_answers_503_and_registers_nothing(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.new_bucket()
    store_env = s3_server.store_env(bucket)
    for key, value in store_env.items():
        monkeypatch.setenv(key, value)
    with app_client(tmp_path):  # the first start registers the bundled champion into the bucket
        pass
    tiny_xgboost(tmp_path / "next.ubj")
    dead = f"http://127.0.0.1:{free_port()}"
    with app_client(tmp_path, model_store_endpoint_url=dead) as client, (tmp_path / "next.ubj").open("rb") as fh:
        resp = client.post("/models", data={"version": "2.0.0"}, files={"artifact": ("next.ubj", fh)})
        assert resp.status_code == 503, resp.text
        documented = client.get("/openapi.json").json()["paths"]["/models"]["post"]["responses"]["503"]
        example = documented["content"]["application/json"]["examples"]["store unreachable"]["value"]
        # The documented answer, with this deployment's bucket and endpoint, and the library's reason ("...") open.
        real = resp.json()["detail"].replace(f"s3://{bucket}/models", "s3://models/reportscore")
        pattern = re.escape(example["detail"]).replace(re.escape("..."), ".*")
        assert re.fullmatch(pattern, real.replace(dead, "http://minio:9000"), re.DOTALL), (real, example)
        assert f"(endpoint {dead})" in resp.json()["detail"]
        assert "Check that the store is reachable" in resp.json()["detail"]
        assert [v["version"] for v in client.get("/models").json()["versions"]] == ["1.0.0"]
        assert client.post("/score", json=POC_EXAMPLE).json()["model"]["version"] == "1.0.0"
    assert list((tmp_path / "data" / "model-cache" / ".staging").iterdir()) == []  # the staged copy is gone
