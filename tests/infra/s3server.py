"""A throwaway S3-compatible server for tests of the object store: moto's server mode (``python -m moto.server``)
on a free loopback port, in a process of its own, holding its buckets in memory.

Every test makes a bucket of its own (:meth:`S3Server.new_bucket`), so one server serves a whole session.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tests.conftest import require
from tests.infra.isolation import unique_name
from tests.infra.throwaway import HOST, _ServerBase

# moto accepts any key pair; these only have to be present so the AWS SDKs sign their requests.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "reportscore-test",
    "AWS_SECRET_ACCESS_KEY": "reportscore-test-secret",
    "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance metadata service that is not there
}
REGION = "us-east-1"


class S3Server(_ServerBase):
    """``moto.server`` answering the S3 API on ``endpoint_url``."""

    name = "s3"

    def __init__(self, *, port: int | None = None, start_timeout_s: float = 60.0, stop_timeout_s: float = 10.0) -> None:
        super().__init__(port=port, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s, keep_dir=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _log_path(self) -> Path:
        return self.dir / "moto.log"

    def _spawn(self) -> subprocess.Popen[bytes]:
        require(
            importlib.util.find_spec("moto.server") is not None and importlib.util.find_spec("flask") is not None,
            "moto's server mode is needed (the dev group's moto[server])",
        )
        with self._log_path().open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _ping(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint_url}/moto-api/", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def client(self) -> Any:
        """A boto3 S3 client: an independent view of the bucket (what the service wrote, for checks and tampering)."""
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def new_bucket(self) -> str:
        name = unique_name("rs-test-").replace("_", "-").lower()
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def store_env(self, bucket: str, prefix: str = "models") -> dict[str, str]:
        """The environment of a reportscore process whose model store is ``s3://bucket/prefix`` on this server."""
        return {
            "REPORTSCORE_MODEL_STORE_URL": f"s3://{bucket}/{prefix}",
            "REPORTSCORE_MODEL_STORE_ENDPOINT_URL": self.endpoint_url,
            "REPORTSCORE_MODEL_STORE_REGION": REGION,
            **CREDENTIALS,
        }
