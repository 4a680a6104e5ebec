"""Callbacks without a server process: the SSRF guard, settings, backoff, the outbox written with the final
status, leases, and the dispatcher's DNS re-check (rebinding) against a real receiver."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from reportscore.callbacks.dispatcher import CallbackDispatcher, backoff_s
from reportscore.callbacks.urls import AllowList, UnsafeCallbackUrl, check_url
from reportscore.jobs import submission as jobs_submission
from reportscore.scoring.service import score_jobs
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.models import CallbackDelivery, CallbackStatus, Job, JobStatus
from reportscore.storage.repositories import callbacks as callbacks_repo
from reportscore.storage.repositories import jobs as jobs_repo
from tests.callback_receiver import SECRET, Receiver, documented_verify
from tests.conftest import make_settings
from tests.fakes import POISON_TEXT_LEN, FakeModel, fake_serving_model
from tests.servers import run_cli

REPORT = {
    "abuse_type": "MSG",
    "report_text_len": 10,
    "profile_rating": 1.5,
    "popularity": 3,
    "lifetime_matches_created": 7,
}


# --- the SSRF guard --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://127.0.0.1:8080/x",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[::]/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
    ],
)
def test_non_public_destinations_are_refused(url: str) -> None:
    with pytest.raises(UnsafeCallbackUrl, match="REPORTSCORE_CALLBACK_ALLOW_PRIVATE_NETWORKS"):
        check_url(url, AllowList())


def test_public_addresses_pass_and_the_allow_list_admits_networks_and_names() -> None:
    checked = check_url("https://93.184.215.14:8443/hook?x=1", AllowList())
    assert checked.port == 8443
    assert [str(a) for a in checked.addresses] == ["93.184.215.14"]
    allow = AllowList.parse(["10.0.0.0/8", "LocalHost"])
    assert check_url("http://10.1.2.3/", allow).host == "10.1.2.3"
    assert check_url("http://localhost:9/", allow).host == "localhost"
    with pytest.raises(UnsafeCallbackUrl):
        check_url("http://192.168.0.1/", allow)


def test_a_name_with_any_non_public_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def two_answers(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in ("93.184.215.14", "10.0.0.7")]

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    with pytest.raises(UnsafeCallbackUrl, match=r"private address: hooks.example.com \(10.0.0.7\)"):
        check_url("https://hooks.example.com/", AllowList())


def test_unresolvable_hosts_are_refused() -> None:
    with pytest.raises(UnsafeCallbackUrl, match="does not resolve"):
        check_url("https://no-such-host.invalid/", AllowList())


# --- settings --------------------------------------------------------------------------------------------------


def test_callbacks_without_a_secret_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="REPORTSCORE_CALLBACK_SECRET") as info:
        make_settings(tmp_path, callbacks_enabled=True)
    assert "openssl rand" in str(info.value)
    with pytest.raises(ValidationError, match="16 characters"):
        make_settings(tmp_path, callbacks_enabled=True, callback_secret="short")
    with pytest.raises(ValidationError, match="neither a CIDR"):
        make_settings(tmp_path, callback_allow_private_networks=["10.0.0.0/8", "not a host!"])


def test_serve_refuses_to_start_with_callbacks_and_no_secret(tmp_path: Path) -> None:
    result = run_cli(
        ["serve", "--data-dir", str(tmp_path / "data")], {"REPORTSCORE_CALLBACKS_ENABLED": "true"}, timeout_s=60
    )
    assert result.returncode != 0
    assert "REPORTSCORE_CALLBACK_SECRET" in result.stderr.replace("\n", " ")
    assert not (tmp_path / "data" / "reportscore.db").exists()


def test_config_show_redacts_the_callback_secret(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, callbacks_enabled=True, callback_secret=SECRET)
    assert settings.redacted()["callback_secret"] == "***"
    assert SECRET not in repr(settings)
    env = {"REPORTSCORE_CALLBACKS_ENABLED": "true", "REPORTSCORE_CALLBACK_SECRET": SECRET}
    shown = run_cli(["config", "show"], env, timeout_s=60)
    assert shown.returncode == 0, shown.stderr
    assert "callback_secret" in shown.stdout
    assert SECRET not in shown.stdout


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempts, full in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0), (500, 60.0)):
        delays = [backoff_s(attempts=attempts, base_s=2.0, max_s=60.0) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jitter


def test_the_documented_snippet_checks_signature_and_timestamp() -> None:
    from reportscore.callbacks.signing import sign

    verify = documented_verify()
    body = b'{"task_id": "t"}'
    headers = sign(secret=SECRET, timestamp=int(time.time()), body=body, task_id="t", attempt=1)
    assert verify(SECRET.encode(), headers, body)
    old = sign(secret=SECRET, timestamp=int(time.time()) - 3600, body=body, task_id="t", attempt=1)
    assert not verify(SECRET.encode(), old, body)  # a replay of an old delivery
    assert not verify(SECRET.encode(), {**headers, "X-Reportscore-Signature": "sha256=00"}, body)


# --- the outbox ------------------------------------------------------------------------------------------------


def _submit(db: Database, callback_url: str | None = "http://127.0.0.1:9/hook", **report: Any) -> str:
    return jobs_submission.submit_job(
        db=db,
        reports=[{**REPORT, **report}],
        owner="t",
        idempotency_key=None,
        idempotency_ttl_s=60,
        callback_url=callback_url,
    ).job_id


def _deliveries(db: Database) -> dict[str, CallbackDelivery]:
    with db.read() as s:
        return {d.job_id: d for d in s.scalars(select(CallbackDelivery))}


def test_outbox_rows_are_written_with_success_and_failure_and_only_for_callbacks(db: Database) -> None:
    ok, poison, plain = _submit(db), _submit(db, report_text_len=POISON_TEXT_LEN), _submit(db, callback_url=None)
    outcome = score_jobs(db=db, model=fake_serving_model(FakeModel()), job_ids=[ok, poison, plain])
    assert sorted(outcome.succeeded) == sorted([ok, plain])
    assert outcome.failed == [poison]
    rows = _deliveries(db)
    assert set(rows) == {ok, poison}
    assert all(r.status == CallbackStatus.PENDING and r.attempts == 0 for r in rows.values())
    assert rows[ok].url == "http://127.0.0.1:9/hook"
    # a redelivered job writes no second row (first result wins, and so does its callback)
    score_jobs(db=db, model=fake_serving_model(FakeModel()), job_ids=[ok])
    assert set(_deliveries(db)) == {ok, poison}


def test_jobs_that_run_out_of_attempts_get_their_callback(db: Database) -> None:
    job = _submit(db)
    with db.write() as s:
        s.execute(update(Job).where(Job.id == job).values(attempts=3))
    outcome = score_jobs(db=db, model=fake_serving_model(), job_ids=[job], max_attempts=3)
    assert outcome.failed == [job]
    assert set(_deliveries(db)) == {job}


def test_the_outbox_row_commits_with_the_result_or_not_at_all(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _submit(db)

    def broken(session: Any, *, job_ids: list[str], now: datetime) -> None:
        if job_ids:
            raise RuntimeError("crash between the result and its callback")

    monkeypatch.setattr(callbacks_repo, "enqueue_for_jobs", broken)
    with pytest.raises(RuntimeError):
        score_jobs(db=db, model=fake_serving_model(), job_ids=[job])
    with db.read() as s:
        assert jobs_repo.get_job(s, job).status == JobStatus.STARTED  # type: ignore[union-attr]
    assert _deliveries(db) == {}


def test_claims_lease_rows_so_no_two_processes_take_the_same(db: Database) -> None:
    job = _submit(db)
    score_jobs(db=db, model=fake_serving_model(), job_ids=[job])
    now = datetime.now(UTC)
    with db.write() as s:
        first = callbacks_repo.claim_due(s, now=now, lease_s=30, limit=10)
    with db.write() as s:
        second = callbacks_repo.claim_due(s, now=now + timedelta(seconds=1), lease_s=30, limit=10)
    with db.write() as s:
        expired = callbacks_repo.claim_due(s, now=now + timedelta(seconds=31), lease_s=30, limit=10)
    assert [d.job_id for d in first] == [job]
    assert second == []
    assert [d.job_id for d in expired] == [job]
    with db.write() as s:
        assert callbacks_repo.record_attempt(
            s,
            job_id=job,
            attempts_before=0,
            at=now,
            delivered=True,
            status_code=200,
            error=None,
            give_up=False,
            next_attempt_at=now,
        )
        # the slower of the two holders records nothing (the row moved on)
        assert not callbacks_repo.record_attempt(
            s,
            job_id=job,
            attempts_before=0,
            at=now,
            delivered=False,
            status_code=500,
            error="late",
            give_up=False,
            next_attempt_at=now,
        )
    row = _deliveries(db)[job]
    assert (row.status, row.attempts, row.last_error) == (CallbackStatus.DELIVERED, 1, None)


# --- the dispatcher: DNS is checked again before every delivery ------------------------------------------------


def test_dispatcher_rechecks_dns_and_connects_to_the_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        tmp_path,
        callbacks_enabled=True,
        callback_secret=SECRET,
        callback_allow_private_networks=["127.0.0.1/32"],
        callback_backoff_base_s=0.05,
        callback_poll_interval_s=0.02,
    )
    answers = iter(["10.9.9.9"])  # first delivery: the name now points inside the network; then loopback

    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host != "hooks.example.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "127.0.0.1"), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    database = Database.from_settings(settings)
    from reportscore.storage import migrate

    migrate.upgrade_to_head(database)
    try:
        with Receiver() as receiver:
            job = _submit(database, callback_url=f"http://hooks.example.test:{receiver.port}/cb")
            score_jobs(db=database, model=fake_serving_model(), job_ids=[job])
            asyncio.run(_run_dispatcher(database, settings, lambda: _deliveries(database)[job].status != "pending"))
            row = _deliveries(database)[job]
            assert row.status == CallbackStatus.DELIVERED
            assert row.attempts == 2
            (delivery,) = receiver.for_task(job)  # the refused attempt sent nothing
            assert delivery.headers["Host"] == f"hooks.example.test:{receiver.port}"
            assert delivery.headers["X-Reportscore-Attempt"] == "2"
    finally:
        database.dispose()


async def _run_dispatcher(db: Database, settings: Settings, done: Any, timeout_s: float = 10.0) -> None:
    dispatcher = CallbackDispatcher(db=db, settings=settings, release_leases_at_start=True)
    await dispatcher.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(done):
            assert time.monotonic() < deadline, "dispatcher did not finish"
            await asyncio.sleep(0.02)
    finally:
        await dispatcher.stop(drain_s=5)


def test_a_receiver_that_never_answers_times_out_and_is_given_up(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        callbacks_enabled=True,
        callback_secret=SECRET,
        callback_allow_private_networks=["127.0.0.1/32"],
        callback_timeout_s=0.3,
        callback_max_attempts=1,
        callback_poll_interval_s=0.02,
    )
    database = Database.from_settings(settings)
    from reportscore.storage import migrate

    migrate.upgrade_to_head(database)
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        try:
            job = _submit(database, callback_url=f"http://127.0.0.1:{silent.getsockname()[1]}/cb")
            score_jobs(db=database, model=fake_serving_model(), job_ids=[job])
            started = time.monotonic()
            asyncio.run(_run_dispatcher(database, settings, lambda: _deliveries(database)[job].status != "pending"))
            row = _deliveries(database)[job]
            assert row.status == CallbackStatus.FAILED
            assert row.attempts == 1
            assert row.last_error is not None
            assert "Timeout" in row.last_error or "no answer within" in row.last_error
            assert time.monotonic() - started < 5
        finally:
            database.dispose()
