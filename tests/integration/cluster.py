"""A distributed deployment on loopback, made of the same process commands the containers run:
``reportscore migrate``, ``reportscore serve`` (API) and ``reportscore worker``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import psycopg

from reportscore.scoring.registry import load_model_dir
from reportscore.settings import Settings
from tests.servers import ServiceProcess, WorkerProcess, free_port, run_cli

# The task time limit, the broker's visibility timeout and the job lease keep their shipped defaults: a dead
# worker's jobs are recovered through the lease and its heartbeat, whatever a job may take. Only the reconciler
# looks more often, so the tests of lost messages (PENDING jobs re-published) finish in seconds rather than a
# minute; test_faults.py also runs a worker fault with no setting changed at all.
FAST_RECOVERY = {
    "REPORTSCORE_RECONCILE_INTERVAL_S": "0.5",
    "REPORTSCORE_RECONCILE_PENDING_AGE_S": "3",
    "REPORTSCORE_MAX_ATTEMPTS": "3",
}


def psycopg_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")


class Cluster:
    def __init__(self, *, work_dir: Path, database_url: str, broker_url: str, prefix: str, **extra: str) -> None:
        self.work_dir = work_dir
        self.database_url = database_url
        self.env = {
            "REPORTSCORE_DATABASE_URL": database_url,
            "REPORTSCORE_BROKER_URL": broker_url,
            "REPORTSCORE_REDIS_PREFIX": prefix,
            "REPORTSCORE_QUEUE_NAME": f"{prefix}-scoring",
            "REPORTSCORE_DATA_DIR": str(work_dir / "data"),
            **extra,
        }
        self.apis: list[ServiceProcess] = []
        self.workers: list[WorkerProcess] = []

    def migrate(self) -> None:
        result = run_cli(["migrate"], self.env)
        assert result.returncode == 0, result.stderr

    def start_api(self) -> ServiceProcess:
        api = ServiceProcess(env=self.env, work_dir=self.work_dir).start()
        self.apis.append(api)
        return api

    def start_worker(self, concurrency: int = 2) -> WorkerProcess:
        log = self.work_dir / f"worker-{len(self.workers)}.log"
        env = {**self.env, "REPORTSCORE_WORKER_METRICS_PORT": str(free_port())}
        worker = WorkerProcess(env=env, log_path=log, concurrency=concurrency).start()
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(p.logs() for p in [*self.apis, *self.workers])

    def stop(self) -> None:
        for proc in [*self.apis, *self.workers]:
            proc.stop()

    # --- load and checks ----------------------------------------------------------------------------------------
    def submit_many(self, bodies: list[list[dict[str, Any]]], *, threads: int = 8) -> list[str]:
        url = self.apis[0].url

        def post(body: list[dict[str, Any]]) -> str:
            for _ in range(50):
                resp = httpx.post(f"{url}/predict", json=body, timeout=30)
                if resp.status_code == 202:
                    return str(resp.json()["task_id"])
                assert resp.status_code == 503, resp.text  # store restarting: retry like a client would
                time.sleep(0.2)
            raise AssertionError("submit kept failing")

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(post, bodies))

    def statuses(self) -> dict[str, int]:
        with psycopg.connect(psycopg_url(self.database_url)) as conn:
            return dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())

    def wait_all_finished(self, ids: Iterable[str], *, timeout_s: float) -> dict[str, str]:
        wanted = list(ids)
        deadline = time.monotonic() + timeout_s
        while True:
            with psycopg.connect(psycopg_url(self.database_url)) as conn:
                found = conn.execute("SELECT id, status FROM jobs WHERE id = ANY(%s)", (wanted,)).fetchall()
            rows: dict[str, str] = {str(k): str(v) for k, v in found}
            if all(rows.get(i) in ("SUCCESS", "FAILURE") for i in wanted) or time.monotonic() > deadline:
                return {i: rows.get(i, "MISSING") for i in wanted}
            time.sleep(0.25)

    def assert_scored_exactly_once(
        self, accepted: dict[str, list[dict[str, Any]]], *, model_dir: Path | None = None
    ) -> None:
        """Every accepted job SUCCESS, exactly one score per report, equal to the model's own prediction."""
        model = load_model_dir(model_dir or Settings().model_path)
        with psycopg.connect(psycopg_url(self.database_url)) as conn:
            for task_id, reports in accepted.items():
                status, n_reports = conn.execute(
                    "SELECT status, n_reports FROM jobs WHERE id = %s", (task_id,)
                ).fetchone() or ("MISSING", 0)
                assert status == "SUCCESS", (task_id, status)
                rows = conn.execute(
                    "SELECT r.position, s.score FROM reports AS r LEFT JOIN report_scores AS s ON s.report_id = r.id "
                    "WHERE r.job_id = %s ORDER BY r.position",
                    (task_id,),
                ).fetchall()
                assert [p for p, _ in rows] == list(range(len(reports))) == list(range(n_reports))
                expected = model.model.predict(model.schema.encode_reports(reports))
                np.testing.assert_allclose([s for _, s in rows], expected, atol=1e-6)


def small_bodies(n_jobs: int, *, reports_per_job: int = 1, seed: int = 0) -> list[list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    return [
        [
            {
                "abuse_type": "MSG" if rng.random() < 0.6 else "PRF",
                "report_text_len": int(rng.integers(0, 3000)),
                "profile_rating": float(rng.uniform(0, 10)),
                "popularity": int(rng.integers(0, 6)),
                "lifetime_matches_created": int(rng.integers(0, 10_000)),
            }
            for _ in range(reports_per_job)
        ]
        for _ in range(n_jobs)
    ]
