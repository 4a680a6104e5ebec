"""The model store in an S3-compatible bucket (moto's server mode, started by the test session): publishing,
the completion manifest, the verified download cache, tampering, an unreachable endpoint, and a distributed
deployment whose API and worker processes share nothing but the bucket."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest

from reportscore.scoring import registry as registry_module
from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.object_store import MANIFEST, ObjectStore
from reportscore.scoring.registration import ModelVersionView, ensure_champion, promote, register_model
from reportscore.scoring.registry import ModelRegistry, load_model_dir
from reportscore.scoring.store import StoreError, StoreUnavailableError, VersionExistsError
from reportscore.scoring.stores import open_store
from reportscore.settings import Settings
from reportscore.storage import migrate
from reportscore.storage.db import Database
from tests.e2e.test_api_contract import POC_EXAMPLE
from tests.infra.s3server import REGION, S3Server
from tests.infra.throwaway import free_port
from tests.integration.cluster import Cluster
from tests.model_helpers import tiny_xgboost
from tests.servers import run_cli

PREFIX = "models/reportscore-reference"


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bucket of this test's own; this process's environment points the store at it (credentials included)."""
    name = s3_server.new_bucket()
    for key, value in s3_server.store_env(name).items():
        monkeypatch.setenv(key, value)
    return name


@dataclass(frozen=True)
class Registered:
    """An ``s3://`` registry whose champion is the bundled 1.0.0, with 2.0.0 registered (not promoted) beside it."""

    settings: Settings
    db: Database
    view: ModelVersionView
    expected: np.ndarray  # 2.0.0's scores of POC_EXAMPLE


@pytest.fixture
def v2(bucket: str, tmp_path: Path) -> Iterator[Registered]:
    settings = Settings(data_dir=tmp_path / "data")
    db = Database.from_settings(settings)
    migrate.upgrade_to_head(db)
    ensure_champion(db=db, settings=settings)
    clf = tiny_xgboost(tmp_path / "2.0.0.json")
    view = register_model(db=db, settings=settings, artifact=tmp_path / "2.0.0.json", version="2.0.0")
    expected = clf.predict_proba(FeatureSchema.default().encode_reports(POC_EXAMPLE))[:, 1]
    yield Registered(settings=settings, db=db, view=view, expected=expected)
    db.dispose()


def _store(settings: Settings, *, cache_dir: Path, endpoint_url: str | None = None) -> ObjectStore:
    return ObjectStore(
        settings.effective_model_store_url,
        endpoint_url=endpoint_url or settings.model_store_endpoint_url,
        region=REGION,
        cache_dir=cache_dir,
    )


def _dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_registration_uploads_the_version_and_its_manifest_and_never_overwrites(
    s3_server: S3Server, bucket: str, v2: Registered, tmp_path: Path
) -> None:
    settings, view = v2.settings, v2.view
    assert view.artifact_uri == f"s3://{bucket}/{PREFIX}/2.0.0/model.json"
    files = ["manifest.json", "metadata.json", "model.json", "reference.json", "schema.json"]
    assert s3_server.keys(bucket, f"{PREFIX}/2.0.0/") == [f"{PREFIX}/2.0.0/{f}" for f in files]
    assert s3_server.keys(bucket, f"{PREFIX}/1.0.0/"), "the bundled first champion was uploaded too"
    body = s3_server.client().get_object(Bucket=bucket, Key=f"{PREFIX}/2.0.0/{MANIFEST}")["Body"].read()
    manifest = json.loads(body)
    assert manifest["files"]["model.json"]["sha256"] == view.sha256
    assert set(manifest["files"]) == set(files) - {MANIFEST}
    assert list((settings.effective_model_cache_dir / ".staging").iterdir()) == []  # staging removed after upload

    store = open_store(settings)
    again = store.staging_dir()
    (again / "model.json").write_text("{}")
    with pytest.raises(VersionExistsError, match="already exists"):
        store.publish(again, name=settings.model_name, version="2.0.0")
    assert json.loads(s3_server.client().get_object(Bucket=bucket, Key=f"{PREFIX}/2.0.0/{MANIFEST}")["Body"].read())
    loaded = load_model_dir(store.model_dir(view.artifact_uri, sha256=view.sha256))
    np.testing.assert_allclose(loaded.model.predict(loaded.schema.encode_reports(POC_EXAMPLE)), v2.expected, atol=1e-6)


def test_the_cache_is_reused_after_re_verification_and_refetched_when_altered(v2: Registered, tmp_path: Path) -> None:
    settings, view = v2.settings, v2.view
    cache = tmp_path / "fresh-cache"
    first = _store(settings, cache_dir=cache).model_dir(view.artifact_uri, sha256=view.sha256)
    assert first == cache.joinpath(*view.artifact_uri.removeprefix("s3://").split("/")[:-1])
    assert (first / MANIFEST).is_file()

    # The same cache, through an endpoint where nothing listens: served from the cache, without the network.
    offline = _store(settings, cache_dir=cache, endpoint_url=_dead_endpoint())
    assert offline.model_dir(view.artifact_uri, sha256=view.sha256) == first

    (first / "model.json").write_bytes((first / "model.json").read_bytes().replace(b"1", b"2", 1))
    with pytest.raises(StoreError, match="Check that the store is reachable"):  # re-verified, so it tried to fetch
        offline.model_dir(view.artifact_uri, sha256=view.sha256)
    again = _store(settings, cache_dir=cache).model_dir(view.artifact_uri, sha256=view.sha256)
    assert load_model_dir(again).sha256 == view.sha256  # downloaded afresh
    with pytest.raises(StoreError, match="registry's sha256"):  # the registry's hash is what the copy must match
        _store(settings, cache_dir=tmp_path / "other-cache").model_dir(view.artifact_uri, sha256="0" * 64)


def test_processes_sharing_a_cache_load_the_same_version_at_once(v2: Registered, tmp_path: Path) -> None:
    settings, view = v2.settings, v2.view
    cache = tmp_path / "shared-cache"
    stores = [_store(settings, cache_dir=cache) for _ in range(4)]  # as API processes on one machine would
    with ThreadPoolExecutor(max_workers=4) as pool:
        dirs = list(pool.map(lambda store: store.model_dir(view.artifact_uri, sha256=view.sha256), stores))
    assert len(set(dirs)) == 1
    assert load_model_dir(dirs[0]).sha256 == view.sha256
    assert list((cache / ".partial").iterdir()) == []  # the copies that lost the race are gone


class _ConnectionLostAfter:
    """pyarrow's S3 filesystem, except that uploads fail after ``n`` files (a network cut mid-publish)."""

    def __init__(self, real: Any, n: int) -> None:
        self._real = real
        self._left = n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def open_output_stream(self, path: str) -> Any:
        if self._left == 0:
            raise OSError("AWS Error NETWORK_CONNECTION during PutObject operation: connection reset")
        self._left -= 1
        return self._real.open_output_stream(path)


def test_an_interrupted_upload_is_not_loadable_and_can_be_published_again(
    s3_server: S3Server, bucket: str, v2: Registered, tmp_path: Path
) -> None:
    settings, view = v2.settings, v2.view
    source = _store(settings, cache_dir=tmp_path / "source").model_dir(view.artifact_uri, sha256=view.sha256)
    cut = _store(settings, cache_dir=tmp_path / "cut")
    cut.__dict__["_fs"] = _ConnectionLostAfter(cut._fs, n=2)
    staging = cut.staging_dir()
    for path in source.iterdir():
        if path.name != MANIFEST:
            shutil.copyfile(path, staging / path.name)
    with pytest.raises(StoreUnavailableError, match="connection reset"):
        cut.publish(staging, name=settings.model_name, version="3.0.0")
    assert len(s3_server.keys(bucket, f"{PREFIX}/3.0.0/")) == 2, "two files made it before the cut"
    uri = f"s3://{bucket}/{PREFIX}/3.0.0/model.json"
    reader = _store(settings, cache_dir=tmp_path / "reader")
    with pytest.raises(StoreError, match="never completely uploaded"):
        reader.model_dir(uri, sha256=view.sha256)
    assert not (tmp_path / "reader" / bucket).exists()
    assert list((tmp_path / "reader" / ".partial").glob("*")) == []

    retry = _store(settings, cache_dir=tmp_path / "cut")  # the leftovers have no manifest: not a published version
    assert retry.publish(staging, name=settings.model_name, version="3.0.0") == f"s3://{bucket}/{PREFIX}/3.0.0"
    assert load_model_dir(reader.model_dir(uri, sha256=view.sha256)).sha256 == view.sha256


def test_a_tampered_object_is_refused_and_the_champion_keeps_serving(
    s3_server: S3Server, bucket: str, v2: Registered, tmp_path: Path
) -> None:
    settings, db, view = v2.settings, v2.db, v2.view
    registry = ModelRegistry.from_settings(settings, db)
    assert registry.current.version == "1.0.0"
    key = f"{PREFIX}/2.0.0/model.json"
    original = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=original.replace(b"1", b"2", 1))
    promote(db=db, settings=settings, version="2.0.0")
    fresh = ModelRegistry.from_settings(settings.model_copy(update={"model_cache_dir": tmp_path / "cache-b"}), db)
    for reg in (registry, fresh):
        assert reg.refresh(db, name=settings.model_name, threads=1) is False
        assert reg.current.version == "1.0.0"
    with pytest.raises(StoreError, match="altered after it was published"):
        _store(settings, cache_dir=tmp_path / "cache-c").model_dir(view.artifact_uri, sha256=view.sha256)


def test_a_store_outage_delays_a_promotion_without_losing_it(
    v2: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings, db = v2.settings, v2.db
    monkeypatch.setattr(registry_module, "STORE_RETRY_S", 0.5)
    promote(db=db, settings=settings, version="2.0.0")
    registry = ModelRegistry.from_settings(
        settings.model_copy(update={"model_store_endpoint_url": _dead_endpoint(), "model_cache_dir": tmp_path / "c"})
    )
    with caplog.at_level(logging.ERROR, logger="reportscore.scoring.registry"):
        assert registry.refresh(db, name=settings.model_name, threads=1) is False
    assert registry.current.version == "1.0.0"
    [record] = [r for r in caplog.records if "its store or endpoint is unreachable" in r.getMessage()]
    assert "Check that the store is reachable" in record.__dict__["error"]
    registry.store = open_store(settings.model_copy(update={"model_cache_dir": tmp_path / "c"}))  # store is back
    deadline = time.monotonic() + 10
    while not registry.refresh(db, name=settings.model_name, threads=1):
        assert time.monotonic() < deadline, "the promotion was never retried after the outage"
        time.sleep(0.1)
    assert registry.current.version == "2.0.0"


def test_an_unreachable_store_is_a_clear_error(bucket: str, tmp_path: Path) -> None:
    tiny_xgboost(tmp_path / "m.json")
    endpoint = _dead_endpoint()
    env = {
        "REPORTSCORE_DATA_DIR": str(tmp_path / "data"),
        "REPORTSCORE_MODEL_STORE_URL": f"s3://{bucket}/models",
        "REPORTSCORE_MODEL_STORE_ENDPOINT_URL": endpoint,
    }
    result = run_cli(["models", "register", str(tmp_path / "m.json"), "--version", "2.0.0"], env)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert f"model store s3://{bucket}/models (endpoint {endpoint})" in message
    assert "Check that the store is reachable" in message
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_distributed_api_and_worker_share_only_the_bucket(
    s3_server: S3Server, tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> None:
    redis_url, prefix = redis_url_and_prefix
    bucket = s3_server.new_bucket()
    cluster = Cluster(
        work_dir=tmp_path,
        database_url=pg_url,
        broker_url=redis_url,
        prefix=prefix,
        REPORTSCORE_MODEL_REFRESH_S="0.3",
        **s3_server.store_env(bucket),
    )
    clf = tiny_xgboost(tmp_path / "next.ubj")
    expected = clf.predict_proba(FeatureSchema.default().encode_reports(POC_EXAMPLE))[:, 1]
    try:
        cluster.migrate()  # registers the bundled model: into the bucket
        # Each process keeps its own data directory and cache, as on separate machines.
        cluster.env["REPORTSCORE_DATA_DIR"] = str(tmp_path / "api-data")
        api = cluster.start_api()
        cluster.env["REPORTSCORE_DATA_DIR"] = str(tmp_path / "worker-data")
        worker = cluster.start_worker(concurrency=1)
        with httpx.Client(base_url=api.url, timeout=30) as http, (tmp_path / "next.ubj").open("rb") as fh:
            created = http.post("/models", data={"version": "2.0.0"}, files={"artifact": ("n.ubj", fh)})
            assert created.status_code == 201, created.text
            assert f"{PREFIX}/2.0.0/{MANIFEST}" in s3_server.keys(bucket)
            assert http.post("/models/2.0.0/promote").status_code == 200
            deadline = time.monotonic() + 60
            while True:
                task = http.get(f"/task/{http.post('/predict', json=POC_EXAMPLE).json()['task_id']}?wait=20").json()
                if task["status"] == "SUCCESS" and task["model"]["version"] == "2.0.0":
                    break
                assert time.monotonic() < deadline, f"the worker never scored with 2.0.0: {worker.logs()[-3000:]}"
            # The API follows the champion on its own refresh: wait until it says it serves 2.0.0.
            while http.get("/health/ready").json()["checks"]["model"] != "reportscore-reference 2.0.0":
                assert time.monotonic() < deadline, f"the api never loaded 2.0.0: {api.logs()[-3000:]}"
                time.sleep(0.1)
        np.testing.assert_allclose(task["score"], expected, atol=1e-6)
        for name in ("api", "worker"):
            cached = tmp_path / f"{name}-data" / "model-cache" / bucket / PREFIX / "2.0.0" / MANIFEST
            assert cached.is_file(), f"the {name} did not load 2.0.0 from the bucket"
    finally:
        cluster.stop()
