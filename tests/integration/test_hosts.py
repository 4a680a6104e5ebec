"""Faults across network hosts: partitions, a slow lossy broker link and a dead host, under load.

One deployment for the module (``tests.infra.hosts``): PostgreSQL, Redis, two API hosts, three worker hosts and a
load generator, each in its own network namespace. Every test starts from all hosts connected and leaves them so.
Each fault runs under a short load and ends with the same accounting as ``test_faults.py``: every accepted job
SUCCESS, exactly one score per report equal to the model's, clients never answered 500, the time to recover.
The task time limit, lease and its renewal keep their shipped defaults; only the reconciler looks more often
(``FAST_RECOVERY``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest

from tests.fakes import write_fake_model_dir
from tests.infra.fixtures import host_lab
from tests.infra.hosts import API_HOSTS, CLIENT_KEEPALIVES, WORKER_HOSTS, HostCluster, NsPostgres, NsRedis, broker_proxy
from tests.infra.netlab import NetLab, inside, netem_available
from tests.infra.netproxy import PASS, Impairment, LinkProxy
from tests.integration.cluster import FAST_RECOVERY, psycopg_url, small_bodies

__all__ = ["host_lab"]

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]


class Deployment:
    def __init__(self, lab: NetLab, cluster: HostCluster, proxy: LinkProxy, model_dir: Path) -> None:
        self.lab = lab
        self.cluster = cluster
        self.proxy = proxy
        self.model_dir = model_dir


@pytest.fixture(scope="module")
def deployment(host_lab: NetLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("hosts")
    model_dir = write_fake_model_dir(work / "model", sleep_s=0.05)
    with NsPostgres(host_lab, "pg") as pg, NsRedis(host_lab, "redis") as rd:
        proxy = broker_proxy(host_lab, rd)
        host, port = proxy.address
        cluster = HostCluster(
            host_lab,
            work_dir=work,
            database_url=f"{pg.create_database('reportscore')}?{CLIENT_KEEPALIVES}",
            broker_url=f"redis://{host}:{port}/0",
            REPORTSCORE_MODEL_PATH=str(model_dir),
            REPORTSCORE_EXTRA_MODEL_FORMATS='["tests.fakes:FakeFormat"]',
            **FAST_RECOVERY,
        )
        try:
            cluster.migrate()
            cluster.start_hosts(API_HOSTS, WORKER_HOSTS)
            yield Deployment(host_lab, cluster, proxy, model_dir)
        finally:
            for host in (*API_HOSTS, *WORKER_HOSTS):  # the end of the test run: no need for graceful stops
                host_lab.kill_host(host)
            for proc in [*cluster.apis, *cluster.workers]:
                if proc.proc is not None:
                    proc.proc.wait(timeout=10)
            proxy.close()


class Load:
    """Clients on the load host submitting jobs to the API hosts (round robin, or one host), retrying a 503 or a
    timeout as a client would; every status code they saw is kept."""

    def __init__(self, urls: list[str], bodies: list[list[dict[str, Any]]], *, ns: str) -> None:
        self.urls = urls
        self.bodies = bodies
        self.ns = ns
        self.accepted: dict[str, list[dict[str, Any]]] = {}
        self.codes: Counter[int] = Counter()
        self.timeouts = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _post(self, item: tuple[str, list[dict[str, Any]]]) -> None:
        url, body = item
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                resp = httpx.post(f"{url}/predict", json=body, timeout=5)
            except httpx.TransportError:
                with self._lock:
                    self.timeouts += 1
                continue
            with self._lock:
                self.codes[resp.status_code] += 1
            if resp.status_code == 202:
                with self._lock:
                    self.accepted[str(resp.json()["task_id"])] = body
                return
            if resp.status_code != 503:
                return
            time.sleep(0.2)

    def _run(self) -> None:
        with inside(self.ns), ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(self._post, zip(cycle(self.urls), self.bodies)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=120)

    def n_accepted(self) -> int:
        with self._lock:
            return len(self.accepted)


def _wait_for(
    predicate: Callable[[], bool], timeout_s: float = 60, what: str | Callable[[], str] = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what if isinstance(what, str) else what()} not reached in {timeout_s}s")
        time.sleep(0.1)


def _successes(d: Deployment) -> int:
    return d.cluster.statuses().get("SUCCESS", 0)


def _account(d: Deployment, load: Load, fault_at: float, label: str, *, timeout_s: float = 90) -> float:
    """Every accepted job ends SUCCESS with one score per report equal to the model's; no 500. Returns the time
    from the fault until the last accepted job ended."""
    assert not load._thread.is_alive(), "the load did not finish"
    assert set(load.codes) <= {202, 503}, f"clients saw {dict(load.codes)}"
    assert len(load.accepted) == len(load.bodies), (
        f"{len(load.bodies) - len(load.accepted)} submissions never accepted; codes {dict(load.codes)}"
    )
    final = d.cluster.wait_all_finished(load.accepted, timeout_s=timeout_s)
    recovered_s = time.monotonic() - fault_at
    not_done = Counter(v for v in final.values() if v != "SUCCESS")
    assert not not_done, f"jobs not SUCCESS: {dict(not_done)}"
    _assert_scored_exactly_once(d, load.accepted)
    print(
        f"\n[hosts] {label}: submitted={len(load.accepted)} success={len(final)} duplicates=0 "
        f"codes={dict(load.codes)} client_timeouts={load.timeouts} recovered_in={recovered_s:.1f}s"
    )
    return recovered_s


def _assert_scored_exactly_once(d: Deployment, accepted: dict[str, list[dict[str, Any]]]) -> None:
    """One score per report (positions 0..n-1, no more), equal to the fake model's (popularity / 5)."""
    with psycopg.connect(psycopg_url(d.cluster.database_url)) as conn:
        rows = conn.execute(
            "SELECT j.id::text, j.status, j.n_reports, array_agg(r.position ORDER BY r.position), "
            "array_agg(s.score ORDER BY r.position) FROM jobs j LEFT JOIN reports r ON r.job_id = j.id "
            "LEFT JOIN report_scores s ON s.report_id = r.id WHERE j.id = ANY(%s) GROUP BY j.id",
            (list(accepted),),
        ).fetchall()
    assert len(rows) == len(accepted)
    for task_id, status, n_reports, positions, scores in rows:
        reports = accepted[task_id]
        assert status == "SUCCESS", (task_id, status)
        assert positions == list(range(len(reports))) == list(range(n_reports)), (task_id, positions)
        expected = [r["popularity"] / 5.0 for r in reports]
        assert scores == pytest.approx(expected, abs=1e-6), (task_id, scores, expected)


def _load(d: Deployment, n: int, seed: int, urls: list[str] | None = None) -> Load:
    return Load(urls or d.cluster.api_urls(), small_bodies(n, seed=seed), ns=d.lab.hosts["load"].ns)


def test_each_service_runs_on_its_own_host_bound_to_its_address(deployment: Deployment) -> None:
    lab, cluster = deployment.lab, deployment.cluster
    for host in ("pg", "redis", *API_HOSTS, *WORKER_HOSTS):
        assert lab.pids(host), f"nothing runs on {host}"
    assert not lab.pids("load")  # the load generator is a thread of the test process that enters the namespace
    # the load host is on the api network only: PostgreSQL does not exist from there
    with inside(lab.hosts["load"].ns), pytest.raises(psycopg.OperationalError):
        psycopg.connect(psycopg_url(cluster.database_url).split("?")[0], connect_timeout=1)
    with _load(deployment, 60, seed=10) as load:
        pass
    _account(deployment, load, time.monotonic(), "harness: 2 API hosts, 3 worker hosts, no fault")
    with psycopg.connect(psycopg_url(cluster.database_url)) as conn:
        clients = {r[0] for r in conn.execute("SELECT host(client_addr) FROM pg_stat_activity").fetchall() if r[0]}
    used = {lab.hosts[h].address("pg") for h in (*API_HOSTS, *WORKER_HOSTS)}
    assert used <= clients, f"PostgreSQL sees clients {clients}, expected every API and worker host {used}"


def _stuck_jobs(d: Deployment) -> int:
    with psycopg.connect(psycopg_url(d.cluster.database_url)) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE status IN ('PENDING', 'STARTED')").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("net", ["pg", "redis"])
def test_worker_host_cut_off_from_one_service_while_the_others_work(deployment: Deployment, net: str) -> None:
    """The worker host stays cut off until every accepted job has ended: the others pick up its share."""
    d = deployment
    base = _successes(d)
    with _load(d, 200, seed=11 if net == "pg" else 12) as load:
        _wait_for(lambda: _successes(d) >= base + 40, what="first results")
        d.lab.cut("w1", net)
        fault_at = time.monotonic()
    try:
        _account(d, load, fault_at, f"worker host cut off from {'PostgreSQL' if net == 'pg' else 'Redis'}")
    finally:
        d.lab.heal("w1", net)
    _wait_for(lambda: _stuck_jobs(d) == 0, timeout_s=60, what="no job left behind after healing")


def test_api_host_cut_off_from_redis_keeps_accepting(deployment: Deployment) -> None:
    d = deployment
    api1 = d.cluster.api("api1")
    base = _successes(d)
    d.lab.cut("api1", "redis")
    fault_at = time.monotonic()
    try:
        with _load(d, 150, seed=13, urls=[api1.url]) as load:
            ready = httpx.get(f"{api1.url}/health/ready", timeout=15)  # from the root namespace (api network)
        assert ready.status_code == 200, ready.text  # the store is what readiness needs
        assert ready.json()["checks"]["broker"] != "ok", ready.json()
    finally:
        d.lab.heal("api1", "redis")
    _account(d, load, fault_at, "API host cut off from Redis, clients still submitting to it")
    assert _successes(d) >= base + 150


def _jobs_started_by(d: Deployment, host: str) -> list[str]:
    """Jobs currently claimed (STARTED); with only ``host``'s workers running, they are its."""
    with psycopg.connect(psycopg_url(d.cluster.database_url)) as conn:
        return [str(r[0]) for r in conn.execute("SELECT id FROM jobs WHERE status = 'STARTED'").fetchall()]


def test_worker_host_partitioned_past_its_lease_is_fenced_when_it_returns(deployment: Deployment) -> None:
    """w3 holds claimed jobs when it drops off every network *and stalls* (its processes stopped, as a host whose
    VM is paused: the partition that Jepsen pairs with a pause) for longer than the lease (15 s, shipped default).
    The other workers reclaim and finish those jobs (attempts >= 2). When w3 comes back it resumes mid-job with
    results to write: its late attempt goes nowhere (its store connection was dropped by the server's keepalives;
    the retry it schedules finds the job finished, and a write that does reach the store is fenced by the attempt
    number). The reclaimed jobs' results are not overwritten (same attempts, finish time and scores as before the
    heal) nor duplicated (one score per report, equal to the model's)."""
    d = deployment
    w3 = d.cluster.worker("w3")
    others = [w for w in d.cluster.workers if getattr(w, "host", "") != "w3" and w.alive()]
    for w in others:
        os.killpg(w.pid, signal.SIGSTOP)  # only w3 claims while we wait for it to hold jobs
    held: list[str] = []
    frozen: list[int] = []
    try:
        with _load(d, 150, seed=14) as load:
            for _ in range(3):  # the cut must catch claimed jobs (under load it nearly always does)
                _first(lambda: _jobs_started_by(d, "w3"))
                d.lab.isolate("w3")
                frozen = _signal_all(d.lab.pids("w3"), signal.SIGSTOP)
                fault_at = time.monotonic()
                cut_at = datetime.now(UTC)
                held = _jobs_started_by(d, "w3")  # the other workers are paused: these are w3's
                if held:
                    break
                _signal_all(frozen, signal.SIGCONT)
                d.lab.rejoin("w3")
            assert held, "the cut never caught a claimed job"
            _resume(others)
            others = []
        _wait_for(
            lambda: _all_done(d, held),
            timeout_s=60,
            what=lambda: f"the partitioned host's jobs reclaimed ({_describe(d, held)})",
        )
        reclaimed_s = (datetime.now(UTC) - cut_at).total_seconds()
        before_heal = _results_of(d, held)
        log_mark = len(w3.logs())
    finally:
        _resume(others)
        d.lab.rejoin("w3")
        _signal_all(frozen, signal.SIGCONT)
    # w3 acts on a held job again (a late write, retry, or lost lease): the late attempt really happens
    _wait_for(lambda: any(j in w3.logs()[log_mark:] for j in held), timeout_s=40, what="w3's late attempt")
    _account(d, load, fault_at, "worker host partitioned (and stalled) past its lease, then healed")
    assert _results_of(d, held) == before_heal
    assert min(attempts for attempts, _, _ in before_heal.values()) >= 2
    late = [line for line in w3.logs()[log_mark:].splitlines() if any(j in line for j in held)]
    print(
        f"[hosts]   {len(held)} jobs held by the partitioned host, reclaimed and ended {reclaimed_s:.1f}s after the "
        f"cut; its late attempts after the heal: {len(late)}, none written"
    )


def _results_of(d: Deployment, ids: list[str]) -> dict[str, tuple[int, Any, list[float]]]:
    with psycopg.connect(psycopg_url(d.cluster.database_url)) as conn:
        rows = conn.execute(
            "SELECT j.id::text, j.attempts, j.finished_at, array_agg(s.score ORDER BY r.position) FROM jobs j "
            "JOIN reports r ON r.job_id = j.id LEFT JOIN report_scores s ON s.report_id = r.id "
            "WHERE j.id = ANY(%s) GROUP BY j.id",
            (ids,),
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _resume(workers: list[Any]) -> None:
    for w in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(w.pid, signal.SIGCONT)


def _signal_all(pids: list[int], sig: signal.Signals) -> list[int]:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return pids


def _first(read: Callable[[], list[str]], timeout_s: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while not (value := read()):
        if time.monotonic() > deadline:
            raise AssertionError("no claimed job seen")
        time.sleep(0.02)
    return value


def _describe(d: Deployment, ids: list[str]) -> str:
    with psycopg.connect(psycopg_url(d.cluster.database_url)) as conn:
        jobs = conn.execute(
            "SELECT status, attempts, leased_until < now() FROM jobs WHERE id = ANY(%s)", (ids,)
        ).fetchall()
        locks = conn.execute(
            "SELECT state, wait_event_type, left(query, 80), host(client_addr) FROM pg_stat_activity "
            "WHERE datname = current_database() AND state <> 'idle'"
        ).fetchall()
    return f"jobs (status, attempts, lease expired): {jobs}; active sessions: {locks}"


def _all_done(d: Deployment, ids: list[str]) -> bool:
    return all(v == "SUCCESS" for v in d.cluster.wait_all_finished(ids, timeout_s=0).values())


def test_whole_worker_host_killed(deployment: Deployment) -> None:
    d = deployment
    base = _successes(d)
    with _load(d, 200, seed=15) as load:
        _wait_for(lambda: _successes(d) >= base + 40, what="first results")
        killed = d.lab.kill_host("w2")
        fault_at = time.monotonic()
    try:
        _account(d, load, fault_at, f"whole worker host killed ({killed} processes)")
    finally:
        d.cluster.start_worker_on("w2")


def test_slow_lossy_broker_link(deployment: Deployment) -> None:
    """200 ms and 5% loss on the broker's link: ``tc netem`` on the Redis host's interface where the kernel has
    ``sch_netem``, else the link proxy's userspace stand-in (delay per chunk, a lost chunk delayed by a
    retransmission timeout)."""
    d = deployment
    redis_ns = d.lab.hosts["redis"].ns
    real = netem_available(redis_ns)
    netem = ["ip", "netns", "exec", redis_ns, "tc", "qdisc"]
    if real:
        subprocess.run([*netem, "add", "dev", "eth-redis", "root", "netem", "delay", "200ms", "loss", "5%"], check=True)
    else:
        d.proxy.set(Impairment(delay_s=0.2, loss=0.05))
    fault_at = time.monotonic()
    try:
        with _load(d, 150, seed=16) as load:
            pass
        how = "tc netem" if real else "userspace stand-in, no netem in this kernel"
        recovered = _account(d, load, fault_at, f"200 ms + 5% loss on the broker's link ({how})")
    finally:
        if real:
            subprocess.run([*netem, "del", "dev", "eth-redis", "root"], check=False)
        d.proxy.set(PASS)
    assert real or d.proxy.lost > 0
    assert recovered > 0.2
