"""Redis over TLS (``rediss://``) with a password, as the broker and for notifications: the certificate is checked
against REPORTSCORE_REDIS_TLS_CA_CERTS, and an unknown certificate is refused by default."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
import redis

from reportscore.runners.celery_app import create_celery_app
from reportscore.settings import Settings
from tests.conftest import require
from tests.infra.throwaway import HOST, RedisServer
from tests.integration.cluster import Cluster, small_bodies

pytestmark = [pytest.mark.integration]

PASSWORD = "tls-broker-pw"


def make_certificates(directory: Path) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it; returns the CA file."""
    require(shutil.which("openssl") is not None, "openssl is needed to make test certificates")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=rstest-ca",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    return directory / "ca.pem"


class TLSRedis(RedisServer):
    """A throwaway ``redis-server`` that listens only on TLS and wants a password."""

    def __init__(self) -> None:
        super().__init__()
        self.ca: Path | None = None

    @property
    def url(self) -> str:
        return f"rediss://:{PASSWORD}@{HOST}:{self.port}/0"

    def _prepare(self) -> None:
        if self.ca is None:
            self.ca = make_certificates(self.dir)
        self.extra_args = [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.dir / "server.pem"),
            "--tls-key-file", str(self.dir / "server.key"),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no",
            "--requirepass", PASSWORD,
        ]  # fmt: skip

    def _ping(self) -> bool:
        try:
            with self.client(
                password=PASSWORD, ssl=True, ssl_ca_certs=str(self.ca), socket_timeout=0.5, socket_connect_timeout=0.5
            ) as c:
                return bool(c.ping())
        except redis.exceptions.RedisError:
            return False


@pytest.fixture
def tls_redis() -> Iterator[TLSRedis]:
    with TLSRedis() as server:
        yield server


def test_rediss_broker_checks_the_certificate(tmp_path: Path, pg_url: str, tls_redis: TLSRedis) -> None:
    assert tls_redis.ca is not None
    # default policy (required) without our CA: the server's certificate is refused
    untrusted = Settings(data_dir=tmp_path, database_url=pg_url, broker_url=tls_redis.url)
    app = create_celery_app(untrusted)
    try:
        with pytest.raises(Exception, match=r"(?i)certificate"), app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=5)
    finally:
        app.close()

    cluster = Cluster(
        work_dir=tmp_path,
        database_url=pg_url,
        broker_url=tls_redis.url,
        prefix="rstest-tls",
        REPORTSCORE_REDIS_TLS_CA_CERTS=str(tls_redis.ca),
    )
    try:
        cluster.migrate()
        api = cluster.start_api()
        cluster.start_worker(concurrency=1)
        with httpx.Client(base_url=api.url, timeout=30) as http:
            assert http.get("/health/ready").json()["checks"]["broker"] == "ok"
            ids = [http.post("/predict", json=body).json()["task_id"] for body in small_bodies(5, seed=7)]
            for task_id in ids:
                assert http.get(f"/task/{task_id}", params={"wait": 20}).json()["status"] == "SUCCESS"
        with tls_redis.client(password=PASSWORD, ssl=True, ssl_ca_certs=str(tls_redis.ca)) as client:
            assert client.pubsub_numsub("rstest-tls:jobs-done")[0][1] >= 1, "notifications are not over TLS Redis"
        assert PASSWORD not in cluster.logs()
    finally:
        cluster.stop()
