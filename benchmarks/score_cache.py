"""The score cache's workloads: the embedded service with ``REPORTSCORE_SCORE_CACHE_SIZE`` 0 (off) and on, each
driven with unique reports and with reports drawn from a pool of ``POOL`` distinct ones, in the same run.

Every workload gets reports of its own (its own seed), so nothing one workload scored can be a hit for the next;
the hit ratio each row reports is read from the service's own ``/metrics`` before and after the workload, so a
"unique" row that hit the cache would show it. Scores are checked against XGBoost's own as everywhere else.
"""

from __future__ import annotations

import functools
import re
import zlib
from typing import TYPE_CHECKING, Any

import httpx2 as httpx

from benchmarks import model_floor, services
from benchmarks.loadgen import Body, Flow, make_bodies
from reportscore.scoring.cache import ScoreCache

if TYPE_CHECKING:
    from benchmarks.suite import Suite

POOL = 50
CACHE_SIZE = 100_000
MATRIX: tuple[tuple[Flow, int, int], ...] = (("sync-nopersist", 100, 8), ("sync", 100, 8), ("sync", 1, 8))
_SAMPLE = re.compile(r"^reportscore_score_cache_(hits|misses)_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


def deployment_name(cache_on: bool, reports: str) -> str:
    return f"score-cache {'on' if cache_on else 'off'} {reports}"


def names() -> list[str]:
    return [
        f"{deployment_name(on, kind)} {flow} B={batch} C={conc}"
        for on in (False, True)
        for kind in ("unique", f"pool{POOL}")
        for flow, batch, conc in MATRIX
    ]


def counters(url: str) -> dict[str, float]:
    """Hits (over every tier) and misses from the service's /metrics."""
    text = httpx.get(url + "/metrics", timeout=10.0).text
    hits = misses = 0.0
    for kind, value in _SAMPLE.findall(text):
        if kind == "hits":
            hits += float(value)
        else:
            misses += float(value)
    return {"hits": hits, "misses": misses}


def workload_bodies(kind: str, flow: str, batch: int, seconds: float) -> list[Body]:
    """Bodies of reports of this workload's own (its seed): for ``unique``, enough that none repeats within the
    run even at ~150,000 reports/s; else ``POOL`` distinct reports over and over."""
    from reportscore.scoring.synthetic import sample_reports

    seed = zlib.crc32(f"{kind} {flow} {batch}".encode())
    if kind == "unique":
        n = int((150_000 if batch > 1 else 5_000) * max(seconds + 1.0, 3.0))
        distinct = sample_reports(n, seed=seed)
        return make_bodies(distinct, batch, model_floor.expected_scores(distinct))
    distinct = sample_reports(POOL, seed=seed)
    expected = model_floor.expected_scores(distinct)
    total = 20_000 if batch > 1 else 4_096
    return make_bodies([distinct[i % POOL] for i in range(total)], batch, [expected[i % POOL] for i in range(total)])


def phase(suite: Suite) -> None:
    bodies: dict[tuple[str, str, int], list[Body]] = {}
    for cache_on in (False, True):
        if not any(suite.selected(n) for n in names() if n.startswith(deployment_name(cache_on, ""))):
            continue
        label = "on" if cache_on else "off"
        server = services.HttpServer(
            services.service_command(port := services.free_port(), suite.args.out / f"score-cache-data-{label}"),
            port=port,
            env={"REPORTSCORE_SCORE_CACHE_SIZE": str(CACHE_SIZE if cache_on else 0)},
            log_path=suite.args.out / f"score-cache-{label}.log",
            cpus=suite.service_cpus,
        )
        suite.log(f"score cache {label}: starting the embedded service")
        server.start()
        try:
            server.wait_ready()
            for kind in ("unique", f"pool{POOL}"):
                deployment = deployment_name(cache_on, kind)
                for flow, batch, conc in MATRIX:
                    name = f"{deployment} {flow} B={batch} C={conc}"
                    if not suite.selected(name):
                        continue
                    key = (kind, flow, batch)
                    if key not in bodies:  # the same bodies with the cache off and on
                        bodies[key] = workload_bodies(kind, flow, batch, suite.duration + suite.warmup)
                    n_distinct = len(bodies[key]) * batch if kind == "unique" else POOL

                    suite.measure(
                        url=server.url,
                        pids=[server.pid],
                        deployment=deployment,
                        name=name,
                        flow=flow,
                        batch=batch,
                        concurrency=conc,
                        bodies=bodies[key],
                        counters=functools.partial(counters, server.url),
                        describe=functools.partial(_describe, label=label, distinct=n_distinct),
                    )
        finally:
            server.stop()
            suite.remove_data("score-cache")


def _describe(delta: dict[str, float], *, label: str, distinct: int) -> tuple[dict[str, Any], str]:
    """A row's cache fields (the hit ratio over its workload, read from the service) and its log text."""
    looked_up = delta["hits"] + delta["misses"]
    hit_ratio = round(delta["hits"] / looked_up, 4) if looked_up else None
    return {"score_cache": label, "distinct_reports": distinct, "cache_hit_ratio": hit_ratio}, f"hit ratio {hit_ratio}"


def seam(seconds: float = 1.0) -> list[dict[str, Any]]:
    """Microseconds per report at the model call itself (reference model, compiled trees, one thread), B = 1 and 100:
    the model alone, then through the in-process tier and through the Redis tier alone (``services.REDIS_URL``, a
    key prefix of its own deleted afterwards), every row a miss (fresh rows) or every row a hit (rows seen before)."""
    import time
    import uuid

    import redis

    from reportscore.scoring.synthetic import sample_reports

    model = model_floor.load_reference(threads=1)
    fresh = model.schema.encode_reports(sample_reports(600_000, seed=11))
    prefix = f"rsbench-cache-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(services.REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)
    out: list[dict[str, Any]] = []
    try:
        for batch in (1, 100):
            tiers: dict[str, ScoreCache | None] = {
                "model alone": None,
                "memory": ScoreCache(CACHE_SIZE),
                "redis": ScoreCache(0, redis=client, redis_prefix=prefix),
            }
            for tier, cache in tiers.items():
                for rows in ("miss", "hit"):
                    if cache is None and rows == "hit":
                        continue
                    offset = 0
                    calls = 0
                    t0 = time.perf_counter()
                    while time.perf_counter() - t0 < seconds and offset + batch <= len(fresh):
                        matrix = fresh[offset : offset + batch] if rows == "miss" else fresh[:batch]
                        if cache is None:
                            model.model.predict(matrix)
                        else:
                            cache.predict("bench", matrix, model.model.predict)
                        offset += batch if rows == "miss" else 0
                        calls += 1
                    us = (time.perf_counter() - t0) / (calls * batch) * 1e6
                    out.append({"batch": batch, "tier": tier, "rows": rows, "us_per_report": round(us, 2)})
                    fresh = fresh[offset:] if rows == "miss" else fresh  # the next miss run gets unseen rows
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
    return out


if __name__ == "__main__":
    for line in seam():
        print(line)
