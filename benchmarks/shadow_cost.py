"""What a shadow costs the champion: the embedded service started twice, without a shadow and with one shadow at
fraction 1.0 (a second registered copy of the reference model, so the shadow's model call costs what the
champion's does), each driven with the same workloads in the same run.

Each "shadow on" row carries the shadow's own accounting over its measured window, read from the service's
``/metrics``: reports it scored and reports it skipped because it fell behind (its backlog was full). The target
is on the champion: its throughput with the shadow stays at least ``MIN_RATIO`` of the row without.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx2 as httpx

from benchmarks import services
from benchmarks.loadgen import Flow
from benchmarks.targets import find

if TYPE_CHECKING:
    from benchmarks.suite import Suite

SHADOW_VERSION = "1.0.0-shadow"
MATRIX: tuple[tuple[Flow, int, int], ...] = (("async", 100, 64), ("sync", 100, 8), ("async", 1, 64))
OPEN_SHARE = 0.5
"""The open-loop row offers async B=100 jobs at this share of the champion's closed-loop rate without a shadow:
a busy but not saturated service, where the shadow should keep up and score every report."""
OPEN_NAME = f"async B=100 open-loop {OPEN_SHARE:.0%}"
_SAMPLE = re.compile(
    r'^reportscore_shadow_(?:reports_total\{[^}]*outcome="(scored|failed)"[^}]*\}|(skipped)_reports_total) '
    r"([0-9.e+]+)$",
    re.M,
)


def deployment_name(shadow_on: bool) -> str:
    return f"shadow {'on' if shadow_on else 'off'}"


def names() -> list[str]:
    return [
        f"{deployment_name(on)} {workload}"
        for on in (False, True)
        for workload in [*(f"{flow} B={batch} C={conc}" for flow, batch, conc in MATRIX), OPEN_NAME]
    ]


def counters(url: str) -> dict[str, float]:
    """The shadow's reports by outcome (scored, failed, skipped) from the service's /metrics."""
    text = httpx.get(url + "/metrics", timeout=10.0).text
    out = {"scored": 0.0, "failed": 0.0, "skipped": 0.0}
    for outcome, skipped, value in _SAMPLE.findall(text):
        out[outcome or skipped] += float(value)
    return out


def start_shadow(url: str, env: dict[str, str], timeout_s: float = 60.0) -> None:
    """Register the reference model again as ``SHADOW_VERSION`` and shadow it at fraction 1 (the CLI, as an
    operator would), then submit a probe until the service's shadow has scored it."""
    from reportscore.reference_model import REFERENCE_MODEL_DIR

    for args in (
        ["models", "register", str(REFERENCE_MODEL_DIR / "model.ubj"), "--version", SHADOW_VERSION],
        ["models", "shadow", SHADOW_VERSION, "--fraction", "1"],
    ):
        done = subprocess.run([services.REPORTSCORE, *args], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"reportscore {' '.join(args)} failed: {done.stderr[-2000:]}")
    from reportscore.scoring.synthetic import sample_reports

    probe = sample_reports(2, seed=7)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=30.0) as client:
        while counters(url)["scored"] == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the shadow scored nothing within a minute of being started")
            task = client.post("/predict", json=probe).json()["task_id"]
            client.get(f"/task/{task}", params={"wait": 10})
            time.sleep(0.2)


def phase(suite: Suite) -> None:
    for shadow_on in (False, True):
        deployment = deployment_name(shadow_on)
        if not any(suite.selected(n) for n in names() if n.startswith(deployment)):
            continue
        label = "on" if shadow_on else "off"
        data_dir = suite.args.out / f"shadow-data-{label}-{uuid.uuid4().hex[:6]}"
        server = services.HttpServer(
            services.service_command(port := services.free_port(), data_dir),
            port=port,
            env={},
            log_path=suite.args.out / f"shadow-{label}.log",
            cpus=suite.service_cpus,
        )
        suite.log(f"shadow {label}: starting the embedded service")
        server.start()
        try:
            server.wait_ready()
            if shadow_on:
                start_shadow(server.url, {"REPORTSCORE_DATA_DIR": str(data_dir), "PATH": os.environ["PATH"]})
            for flow, batch, conc in MATRIX:
                name = f"{deployment} {flow} B={batch} C={conc}"
                if suite.selected(name):
                    _measure(suite, server, deployment, name, flow, batch, conc)
            off = find(suite.rows, f"{deployment_name(False)} async B=100 C=64")
            name = f"{deployment} {OPEN_NAME}"
            if off is not None and off.get("status") == "ok" and suite.selected(name):
                _measure(suite, server, deployment, name, "async", 100, 1024, rate=OPEN_SHARE * off["jobs_per_s"])
        finally:
            server.stop()
            suite.remove_data("shadow")


def _describe(delta: dict[str, float], *, label: str) -> tuple[dict[str, Any], str]:
    """A row's shadow fields (its reports by outcome over the workload, read from the service) and its log text."""
    shadow = {k: int(v) for k, v in delta.items()}
    text = f"shadow scored {shadow['scored']:,} skipped {shadow['skipped']:,} failed {shadow['failed']:,}"
    return {"shadow": label, "shadow_reports": shadow}, text


def _measure(
    suite: Suite,
    server: services.HttpServer,
    deployment: str,
    name: str,
    flow: Flow,
    batch: int,
    conc: int,
    *,
    rate: float = 0.0,
) -> None:
    suite.measure(
        url=server.url,
        pids=[server.pid],
        deployment=deployment,
        name=name,
        flow=flow,
        batch=batch,
        concurrency=conc,
        bodies=suite.bodies[batch],
        rate=rate,
        counters=functools.partial(counters, server.url),
        describe=functools.partial(_describe, label=deployment.removeprefix("shadow ")),
    )
