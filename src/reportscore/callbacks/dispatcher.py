"""The callback dispatcher: an asyncio task in every API process that delivers due rows of the outbox.

Rows are written by whoever commits a job's final status (``score_jobs``), in the same transaction. Each pass
claims due rows with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several API processes never take the
same row; the single writer on SQLite), POSTs each signed result to its URL, and records the outcome: delivered on
a 2xx; otherwise due again after an exponential backoff with jitter, or failed after the maximum attempts.
Delivery is at least once (a process may die after the receiver got the body and before the outcome was
recorded): receivers dedupe by task id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime, timedelta

import httpx2 as httpx
import orjson

from reportscore.callbacks.signing import sign
from reportscore.callbacks.urls import AllowList, CheckedUrl, UnsafeCallbackUrl, check_url
from reportscore.jobs import views as task_views
from reportscore.monitoring import metrics
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import callbacks as callbacks_repo

log = logging.getLogger(__name__)


def backoff_s(*, attempts: int, base_s: float, max_s: float) -> float:
    """Delay after the ``attempts``-th failed delivery: base·2^(attempts-1), capped, with "equal jitter" (between
    half and all of it), so receivers that come back are not hit by every retry at once."""
    delay = min(max_s, base_s * 2.0 ** min(attempts - 1, 62))
    return delay / 2 + random.uniform(0, delay / 2)


class CallbackDispatcher:
    def __init__(self, *, db: Database, settings: Settings, release_leases_at_start: bool) -> None:
        assert settings.callback_secret is not None, "callbacks need a signing secret (checked by Settings)"
        self._db = db
        self._settings = settings
        self._secret = settings.callback_secret.get_secret_value()
        self._allow = AllowList.parse(settings.callback_allow_private_networks)
        self._release_leases_at_start = release_leases_at_start
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        if self._release_leases_at_start:  # embedded: this is the only process, so every lease is a dead one's
            await asyncio.to_thread(self._release_leases)
        self._client = httpx.AsyncClient(
            timeout=self._settings.callback_timeout_s,
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would connect to the name, not to the checked address
            limits=httpx.Limits(max_connections=self._settings.callback_concurrency, max_keepalive_connections=0),
        )
        self._task = asyncio.create_task(self._loop(), name="callback-dispatcher")

    def _release_leases(self) -> None:
        with self._db.write() as session:
            callbacks_repo.release_leases(session)

    async def stop(self, *, drain_s: float) -> None:
        """Stop claiming; let deliveries in flight finish (their rows' leases cover the rest)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=min(drain_s, self._settings.callback_timeout_s + 1))
        if self._client is not None:
            await self._client.aclose()

    async def _loop(self) -> None:
        while not self._closing:
            try:
                claimed = await self.run_once()
            except Exception:
                log.warning("callback dispatch pass failed", exc_info=True)
                claimed = 0
            if claimed < self._settings.callback_concurrency:
                await asyncio.sleep(self._settings.callback_poll_interval_s)

    async def run_once(self) -> int:
        """Claim what is due (up to the free delivery slots), start delivering it; returns how many were claimed."""
        free = self._settings.callback_concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        due = await asyncio.to_thread(self._claim, free)
        for delivery in due:
            task = asyncio.create_task(self._deliver(delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(due)

    def _claim(self, limit: int) -> list[callbacks_repo.DueDelivery]:
        now = datetime.now(UTC)
        with self._db.read() as session:
            if not callbacks_repo.any_due(session, now=now):
                return []
        with self._db.write() as session:
            return callbacks_repo.claim_due(
                session, now=now, lease_s=self._settings.effective_callback_lease_s, limit=limit
            )

    async def _deliver(self, due: callbacks_repo.DueDelivery) -> None:
        attempt = due.attempts + 1
        status_code: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            checked = await asyncio.to_thread(check_url, due.url, self._allow)  # DNS again: rebinding
            view = await asyncio.to_thread(task_views.get_task_for_callback, db=self._db, task_id=due.job_id)
            if view is None or not view.done:
                raise RuntimeError("the task is gone or not finished")  # cannot happen: rows come with results
            body = orjson.dumps(task_views.task_body(view, with_callback=False))
            headers = sign(
                secret=self._secret, timestamp=int(time.time()), body=body, task_id=due.job_id, attempt=attempt
            )
            async with asyncio.timeout(self._settings.callback_timeout_s):  # a whole-delivery deadline too
                status_code = await self._post(checked, body, headers)
            if not 200 <= status_code < 300:
                error = f"receiver answered HTTP {status_code}"
                if 300 <= status_code < 400:
                    error += " (redirects are not followed)"
        except UnsafeCallbackUrl as exc:
            error = f"refused: {exc}"
        except TimeoutError:
            error = f"no answer within {self._settings.callback_timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:
            log.warning("callback delivery failed unexpectedly", extra={"task_id": due.job_id}, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
        delivered = error is None
        give_up = not delivered and attempt >= self._settings.callback_max_attempts
        now = datetime.now(UTC)
        delay = (
            0.0
            if delivered or give_up
            else backoff_s(
                attempts=attempt,
                base_s=self._settings.callback_backoff_base_s,
                max_s=self._settings.callback_backoff_max_s,
            )
        )
        next_attempt_at = now + timedelta(seconds=delay)

        def record() -> bool:
            with self._db.write() as session:
                return callbacks_repo.record_attempt(
                    session,
                    job_id=due.job_id,
                    attempts_before=due.attempts,
                    at=now,
                    delivered=delivered,
                    status_code=status_code,
                    error=error,
                    give_up=give_up,
                    next_attempt_at=next_attempt_at,
                )

        try:
            recorded = await asyncio.to_thread(record)
        except Exception:
            # The store is away: the lease runs out and the delivery is made again (at least once).
            log.warning("could not record a callback delivery", extra={"task_id": due.job_id}, exc_info=True)
            return
        outcome: metrics.CallbackOutcome = "delivered" if delivered else ("failed" if give_up else "retry")
        metrics.observe_callback_delivery(outcome)
        extra = {
            "task_id": due.job_id,
            "attempt": attempt,
            "outcome": outcome,
            "status_code": status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if not recorded:
            log.info("callback outcome not recorded: the delivery moved on meanwhile", extra=extra)
        elif delivered:
            log.info("callback delivered", extra=extra)
        else:
            log.warning("callback not delivered", extra={**extra, "error": error, "retry_in_s": round(delay, 3)})

    async def _post(self, checked: CheckedUrl, body: bytes, headers: dict[str, str]) -> int:
        """POST to the address that was checked (not to a second DNS answer), with the URL's own Host header and,
        for https, its name for SNI and certificate verification."""
        assert self._client is not None
        address = checked.addresses[0]
        ip_host = f"[{address}]" if address.version == 6 else str(address)
        pinned = checked.parts._replace(netloc=f"{ip_host}:{checked.port}").geturl()
        host_header = checked.parts.netloc  # as the client wrote it (credentials are refused by the guard)
        extensions = {"sni_hostname": checked.host} if checked.parts.scheme == "https" else {}
        async with self._client.stream(
            "POST", pinned, content=body, headers={**headers, "Host": host_header}, extensions=extensions
        ) as response:
            return response.status_code
