"""Promote, then roll back, a registered version while clients keep submitting and reading jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx


@dataclass
class SwitchRun:
    results: list[tuple[float, int, str | None]]  # (submitted at, status of the final read, model version)
    promoted_at: float
    rolled_back_at: float

    def check(self, *, refresh_s: float) -> float:
        """Assert no request failed and each phase served one version; returns the switch-over delay in seconds."""
        failures = [r for r in self.results if r[1] != 200]
        assert not failures, failures[:5]
        after_promote = {
            v for t0, _, v in self.results if self.promoted_at + refresh_s + 0.5 < t0 < self.rolled_back_at
        }
        after_rollback = {v for t0, _, v in self.results if t0 > self.rolled_back_at + refresh_s + 0.5}
        assert after_promote == {"2.0.0"}
        assert after_rollback == {"1.0.0"}
        return min(t0 for t0, _, v in self.results if v == "2.0.0" and t0 > self.promoted_at) - self.promoted_at


def promote_and_roll_back_under_load(
    base_url: str, *, body: Callable[[], list[dict[str, Any]]], phase_s: float, clients: int = 4
) -> SwitchRun:
    results: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as c:
            while not stop.is_set():
                t0 = time.time()
                r = c.post("/predict", json=body())
                if r.status_code != 202:
                    results.append((t0, r.status_code, None))
                    continue
                done = c.get(f"/task/{r.json()['task_id']}", params={"wait": 20})
                results.append((t0, done.status_code, done.json().get("model", {}).get("version")))

    threads = [threading.Thread(target=load) for _ in range(clients)]
    for t in threads:
        t.start()
    with httpx.Client(base_url=base_url, timeout=60) as http:
        time.sleep(phase_s / 2)
        promoted_at = time.time()
        assert http.post("/models/2.0.0/promote").status_code == 200
        time.sleep(phase_s)
        rolled_back_at = time.time()
        assert http.post("/models/rollback").status_code == 200
        time.sleep(phase_s)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    return SwitchRun(results=results, promoted_at=promoted_at, rolled_back_at=rolled_back_at)
