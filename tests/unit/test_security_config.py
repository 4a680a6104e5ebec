"""Security-relevant configuration: Celery takes JSON only, TLS for rediss:// brokers, URLs with passwords and TLS
options are accepted and their secrets never printed."""

from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path

import pytest

from reportscore.runners.celery_app import create_celery_app
from reportscore.settings import Settings
from tests.servers import VENV_BIN

PG_TLS = "postgresql+psycopg://app:pg-pw@db.internal:5432/rs?sslmode=require"


def _distributed(tmp_path: Path, broker_url: str, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, database_url=PG_TLS, broker_url=broker_url, **overrides)  # type: ignore[arg-type]


def test_celery_accepts_json_only(tmp_path: Path) -> None:
    app = create_celery_app(_distributed(tmp_path, "redis://127.0.0.1:6379/0"))
    try:
        assert list(app.conf.accept_content) == ["json"]
        assert app.conf.task_serializer == "json"
        assert app.conf.result_serializer == "json"
        assert not app.conf.broker_use_ssl
    finally:
        app.close()


@pytest.mark.parametrize(
    ("cert_reqs", "expected"),
    [(None, ssl.CERT_REQUIRED), ("optional", ssl.CERT_OPTIONAL), ("none", ssl.CERT_NONE)],
)
def test_rediss_broker_uses_tls_with_the_configured_certificate_check(
    tmp_path: Path, cert_reqs: str | None, expected: ssl.VerifyMode
) -> None:
    overrides = {} if cert_reqs is None else {"redis_tls_cert_reqs": cert_reqs}
    settings = _distributed(tmp_path, "rediss://:broker-pw@redis.internal:6380/0", **overrides)
    app = create_celery_app(settings)
    try:
        assert app.conf.broker_use_ssl["ssl_cert_reqs"] == expected
    finally:
        app.close()
    assert settings.redis_tls_options(settings.effective_redis_url or "")["ssl_cert_reqs"] == (cert_reqs or "required")


def test_rediss_ca_bundle_reaches_celery_and_redis_clients(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = _distributed(tmp_path, "rediss://redis.internal:6380/0", redis_tls_ca_certs=ca)
    app = create_celery_app(settings)
    try:
        assert app.conf.broker_use_ssl["ssl_ca_certs"] == str(ca)
    finally:
        app.close()
    assert settings.redis_tls_options("rediss://redis.internal:6380/1")["ssl_ca_certs"] == str(ca)
    assert settings.redis_tls_options("redis://redis.internal:6379/1") == {}


@pytest.mark.parametrize(
    "broker_url",
    ["redis://:broker-pw@127.0.0.1:6379/0", "rediss://:broker-pw@redis.internal:6380/0", "rediss://u:broker-pw@h/0"],
)
def test_urls_with_passwords_and_tls_are_accepted(tmp_path: Path, broker_url: str) -> None:
    settings = _distributed(tmp_path, broker_url)
    assert settings.mode == "distributed"
    assert settings.effective_redis_url == broker_url  # notifications default to the broker's Redis
    assert settings.effective_database_url == PG_TLS


def test_config_show_redacts_every_url_password(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "REPORTSCORE_DATA_DIR": str(tmp_path),
        "REPORTSCORE_DATABASE_URL": PG_TLS,
        "REPORTSCORE_BROKER_URL": "rediss://:broker-pw@redis.internal:6380/0",
        "REPORTSCORE_REDIS_URL": "redis://default:notify-pw@redis2.internal:6379/1?password=query-pw",
        "REPORTSCORE_MODEL_STORE_URL": "s3://AKIA:store-pw@bucket/models",
        "REPORTSCORE_FLOWER_BASIC_AUTH": "ops:flower-pw",
    }
    result = subprocess.run(
        [str(VENV_BIN / "reportscore"), "config", "show"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for secret in ("pg-pw", "broker-pw", "notify-pw", "query-pw", "store-pw", "flower-pw"):
        assert secret not in result.stdout, secret
    shown = json.loads(result.stdout)
    assert shown["database_url"] == "postgresql+psycopg://app:***@db.internal:5432/rs?sslmode=require"
    assert shown["broker_url"] == "rediss://:***@redis.internal:6380/0"
    assert shown["redis_url"].startswith("redis://default:***@redis2.internal:6379/1")
    assert shown["flower_basic_auth"] == "***"
