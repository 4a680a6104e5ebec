"""``reportscore keys`` and the secure-by-default bind of ``reportscore serve``, as real processes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx2 as httpx

from reportscore.security.keys import KEY_PATTERN
from tests.servers import ManagedProcess, free_port, run_cli


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"REPORTSCORE_DATA_DIR": str(tmp_path / "data"), **extra}


def test_create_shows_the_key_once_list_never_does_and_revoke_removes_it(tmp_path: Path) -> None:
    env = _env(tmp_path)
    created = run_cli(
        ["keys", "create", "--tenant", "acme", "--name", "prod", "--scopes", "submit,read", "--rate", "5"], env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    match = KEY_PATTERN.match(key)
    assert match, created.stdout
    prefix = match["prefix"]
    assert "shown only now" in created.stderr
    assert key not in created.stderr

    listed = run_cli(["keys", "list"], env)
    assert listed.returncode == 0, listed.stderr
    assert prefix in listed.stdout
    assert "acme" in listed.stdout
    assert "submit,read" in listed.stdout
    assert match["secret"] not in listed.stdout + listed.stderr

    bad = run_cli(["keys", "create", "--tenant", "acme", "--name", "x", "--scopes", "root"], env)
    assert bad.returncode == 2
    assert "scopes must be" in bad.stderr

    assert run_cli(["keys", "revoke", prefix], env).returncode == 0
    assert prefix not in run_cli(["keys", "list"], env).stdout
    assert prefix in run_cli(["keys", "list", "--all"], env).stdout
    again = run_cli(["keys", "revoke", prefix], env)
    assert again.returncode == 2
    assert "no active API key" in again.stderr

    generated = run_cli(["keys", "generate"], env).stdout.strip()
    assert KEY_PATTERN.match(generated)
    assert KEY_PATTERN.match(generated)["prefix"] not in run_cli(["keys", "list", "--all"], env).stdout  # type: ignore[index]


def test_serve_on_all_interfaces_without_keys_refuses_with_the_fix(tmp_path: Path) -> None:
    result = run_cli(["serve", "--host", "0.0.0.0", "--port", str(free_port())], _env(tmp_path), timeout_s=60)
    assert result.returncode == 2
    message = result.stderr.replace("\n", " ")
    assert "without API keys" in message
    assert "reportscore keys create" in message
    assert "--insecure" in message


def _serve(tmp_path: Path, name: str, args: list[str], env: dict[str, str]) -> tuple[ManagedProcess, str]:
    port = free_port()
    proc = ManagedProcess(
        ["serve", "--host", "0.0.0.0", "--port", str(port), *args],
        env=env,
        log_path=tmp_path / f"{name}.log",
    )
    proc.spawn()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.alive(), proc.logs()[-4000:]
        try:
            if httpx.get(f"{url}/health/ready", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"not ready:\n{proc.logs()[-4000:]}")


def test_serve_insecure_starts_open_and_says_so_loudly(tmp_path: Path) -> None:
    proc, url = _serve(tmp_path, "insecure", ["--insecure"], _env(tmp_path))
    try:
        assert httpx.get(f"{url}/task/{uuid.uuid4()}", timeout=5).status_code == 404  # open: anonymous tenant
        assert "INSECURE" in proc.logs()
    finally:
        proc.stop()


def test_serve_with_a_bootstrap_key_needs_it_and_accepts_it(tmp_path: Path) -> None:
    key = run_cli(["keys", "generate"], {}).stdout.strip()
    proc, url = _serve(tmp_path, "bootstrap", [], _env(tmp_path, REPORTSCORE_BOOTSTRAP_API_KEY=key))
    try:
        task = f"{url}/task/{uuid.uuid4()}"
        missing = httpx.get(task, timeout=5)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("ApiKey")
        assert httpx.get(task, headers={"X-API-Key": key}, timeout=5).status_code == 404
        assert "INSECURE" not in proc.logs()
    finally:
        proc.stop()


def test_migrate_stores_the_bootstrap_key_once_and_refuses_a_placeholder(tmp_path: Path) -> None:
    key = run_cli(["keys", "generate"], {}).stdout.strip()
    env = _env(tmp_path, REPORTSCORE_BOOTSTRAP_API_KEY=key, REPORTSCORE_BOOTSTRAP_API_KEY_TENANT="moderation")
    first = run_cli(["migrate"], env)
    assert first.returncode == 0, first.stderr
    assert "stored REPORTSCORE_BOOTSTRAP_API_KEY" in first.stderr
    again = run_cli(["migrate"], env)
    assert again.returncode == 0, again.stderr
    assert "stored REPORTSCORE_BOOTSTRAP_API_KEY" not in again.stderr
    listed = run_cli(["keys", "list"], env).stdout
    assert "moderation" in listed
    assert "bootstrap" in listed
    placeholder = run_cli(["migrate"], _env(tmp_path, REPORTSCORE_BOOTSTRAP_API_KEY="change-me"))
    assert placeholder.returncode == 2
    assert "keys generate" in placeholder.stderr
    shown = run_cli(["config", "show"], env)
    assert key not in shown.stdout
