"""Scale-out across network hosts: jobs/s and reports/s with 1, 2, 3 worker hosts and 1, 2 API hosts, and the CPU
that PostgreSQL and Redis spend per report.

Uses the multi-host test harness (``tests.infra.hosts``: network namespaces on bridges, PostgreSQL and Redis on
hosts of their own, each process bound to its host's address; needs root). Hosts are added one at a time (no
process is stopped between steps, so no worker can be caught holding messages): 1 API + 1 worker, + a second worker,
+ a third, + a second API. Each step submits the same burst of jobs from the load host and times it to the last
result; the CPU of every process in the PostgreSQL and Redis namespaces is read from /proc before and after.

    sudo .venv/bin/python -m benchmarks.hosts --jobs 400 --reports 10

On a machine with fewer cores than hosts the absolute rates are those of the machine, not of the design: the
per-report CPU of PostgreSQL and Redis, and how the rate grows with workers, are what the capacity model uses.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
from tests.infra.hosts import API_HOSTS, LAYOUT, NETWORKS, WORKER_HOSTS, HostCluster, NsPostgres, NsRedis
from tests.infra.netlab import NetLab, inside, probe
from tests.integration.cluster import small_bodies

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(lab: NetLab, host: str) -> float:
    """User + system CPU of every process in the host's namespace (children that exited included)."""
    total = 0
    for pid in lab.pids(host):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLK_TCK


def _cpu_of(lab: NetLab, hosts: tuple[str, ...]) -> float:
    return sum(cpu_seconds(lab, h) for h in hosts)


def burst(lab: NetLab, cluster: HostCluster, bodies: list[list[dict[str, Any]]]) -> float:
    """Submit every body from the load host (8 clients, round robin over the APIs); seconds to the last result."""
    urls = cluster.api_urls()
    ids: list[str] = []

    def post(i: int) -> str:
        for _ in range(100):
            resp = httpx.post(f"{urls[i % len(urls)]}/predict", json=bodies[i], timeout=30)
            if resp.status_code == 202:
                return str(resp.json()["task_id"])
            time.sleep(0.1)
        raise RuntimeError(f"submission kept failing: {resp.status_code}")

    t0 = time.monotonic()
    with inside(lab.hosts["load"].ns), ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(post, range(len(bodies))))
    final = cluster.wait_all_finished(ids, timeout_s=600)
    elapsed = time.monotonic() - t0
    bad = [v for v in final.values() if v != "SUCCESS"]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs did not end SUCCESS")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--reports", type=int, default=10, help="reports per job")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker host")
    parser.add_argument("--json", type=Path, help="write the table as JSON here too")
    args = parser.parse_args()
    why_not = probe()
    if why_not:
        raise SystemExit(f"cannot build network hosts here: {why_not}")
    steps = [("api1", None), (None, "w1"), (None, "w2"), (None, "w3"), ("api2", None)]
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="rs-hosts-bench-") as work,
        NetLab(NETWORKS, LAYOUT) as lab,
        NsPostgres(lab, "pg") as pg,
        NsRedis(lab, "redis") as rd,
    ):
        cluster = HostCluster(
            lab, work_dir=Path(work), database_url=pg.create_database("reportscore"), broker_url=rd.url
        )
        cluster.migrate()
        try:
            for n, (api, worker) in enumerate(steps):
                if api:
                    cluster.start_api_on(api)
                if worker:
                    cluster.start_worker_on(worker, concurrency=args.concurrency)
                if not cluster.workers:
                    continue
                burst(lab, cluster, small_bodies(20, reports_per_job=args.reports, seed=100 + n))  # warm-up
                bodies = small_bodies(args.jobs, reports_per_job=args.reports, seed=n)
                pg0, rd0 = cpu_seconds(lab, "pg"), cpu_seconds(lab, "redis")
                api0, wk0 = _cpu_of(lab, API_HOSTS), _cpu_of(lab, WORKER_HOSTS)
                elapsed = burst(lab, cluster, bodies)
                pg_cpu, rd_cpu = cpu_seconds(lab, "pg") - pg0, cpu_seconds(lab, "redis") - rd0
                api_cpu, wk_cpu = _cpu_of(lab, API_HOSTS) - api0, _cpu_of(lab, WORKER_HOSTS) - wk0
                n_reports = args.jobs * args.reports
                row = {
                    "api_hosts": len(cluster.apis),
                    "worker_hosts": len(cluster.workers),
                    "jobs_per_s": round(args.jobs / elapsed, 1),
                    "reports_per_s": round(n_reports / elapsed, 1),
                    "pg_cpu_ms_per_report": round(1000 * pg_cpu / n_reports, 3),
                    "redis_cpu_ms_per_report": round(1000 * rd_cpu / n_reports, 3),
                    "pg_cpu_ms_per_job": round(1000 * pg_cpu / args.jobs, 2),
                    "redis_cpu_ms_per_job": round(1000 * rd_cpu / args.jobs, 2),
                    "api_cpu_ms_per_job": round(1000 * api_cpu / args.jobs, 2),
                    "worker_cpu_ms_per_job": round(1000 * wk_cpu / args.jobs, 2),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            cluster.stop()
    header = "| API hosts | worker hosts | jobs/s | reports/s | CPU ms/job: PostgreSQL | Redis | API | workers |"
    print("\n" + header + "\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['api_hosts']} | {r['worker_hosts']} | {r['jobs_per_s']} | {r['reports_per_s']} | "
            f"{r['pg_cpu_ms_per_job']} | {r['redis_cpu_ms_per_job']} | {r['api_cpu_ms_per_job']} | "
            f"{r['worker_cpu_ms_per_job']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
