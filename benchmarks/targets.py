"""The performance targets: each a workload of the service measured against a baseline of the same run (the floor
app's same workload), with a minimum ratio and optionally a p99 bound; and their evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.loadgen import Flow
from benchmarks.stats import meets, ratio, verdict

Row = dict[str, Any]


def workload_name(deployment: str, flow: str, batch: int, concurrency: int) -> str:
    return f"{deployment} {flow} B={batch} C={concurrency}"


def open_name(deployment: str, flow: str, batch: int) -> str:
    return f"{deployment} {flow} B={batch} open-loop"


@dataclass(frozen=True)
class Target:
    """A line of the target table: ``deployment flow B C`` measured against a baseline's same B and C — the floor
    app's same flow, or the MLServer anchor's V2 inference (``baseline="mlserver"``)."""

    label: str
    deployment: str
    flow: Flow
    batch: int
    concurrency: int
    min_ratio: float
    max_p99_ms: float | None = None
    baseline: str = "floor"

    @property
    def baseline_flow(self) -> str:
        return "v2" if self.baseline == "mlserver" else self.flow

    @property
    def baseline_workload(self) -> str:
        return workload_name(self.baseline, self.baseline_flow, self.batch, self.concurrency)

    @property
    def workload(self) -> str:
        return workload_name(self.deployment, self.flow, self.batch, self.concurrency)

    @property
    def metric(self) -> str:
        return "jobs_per_s" if self.batch == 1 else "reports_per_s"

    @property
    def unit(self) -> str:
        if self.batch == 1:
            return "jobs/s" if self.flow == "async" else "req/s"
        return "reports/s"

    @property
    def text(self) -> str:
        if self.baseline == "mlserver":
            out = f">= {self.min_ratio:g}x MLServer's {self.unit}"
        elif self.baseline == "shadow off":
            out = f">= {self.min_ratio:.0%} of the champion's {self.unit} without a shadow"
        else:
            floor = "submit/poll" if self.flow == "async" else "sync"
            out = f">= {self.min_ratio:.0%} of the {floor} floor's {self.unit}"
        if self.max_p99_ms is not None:
            out += f", p99 <= {self.max_p99_ms:g} ms"
        return out


TARGETS: tuple[Target, ...] = (
    Target("embedded, async B=1, C=64", "embedded", "async", 1, 64, 0.50, 100.0),
    Target("embedded, async B=100, C=64", "embedded", "async", 100, 64, 0.50),
    Target("embedded, sync /score B=1, C=8", "embedded", "sync", 1, 8, 0.70, 20.0),
    Target("embedded, sync /score B=100, C=8", "embedded", "sync", 100, 8, 0.50),
    Target("distributed, async B=1, C=64", "distributed", "async", 1, 64, 0.15),
    Target("distributed, async B=100, C=64", "distributed", "async", 100, 64, 0.30),
    Target("vs MLServer: durable /score B=100, C=8", "embedded", "sync", 100, 8, 1.0, baseline="mlserver"),
    Target(
        "vs MLServer: /score?persist=false B=100, C=8", "embedded", "sync-nopersist", 100, 8, 2.0, baseline="mlserver"
    ),
    Target("vs MLServer: durable /score B=1, C=8", "embedded", "sync", 1, 8, 3.0, 20.0, baseline="mlserver"),
    Target("one shadow at fraction 1: async B=100, C=64", "shadow on", "async", 100, 64, 0.80, baseline="shadow off"),
    Target("one shadow at fraction 1: /score B=100, C=8", "shadow on", "sync", 100, 8, 0.80, baseline="shadow off"),
)
FLOOR_TARGETS: tuple[Target, ...] = tuple(t for t in TARGETS if t.baseline == "floor")
ANCHOR_TARGETS: tuple[Target, ...] = tuple(t for t in TARGETS if t.baseline == "mlserver")
MEMORY_TARGET_MB = 400.0


def find(rows: list[Row], name: str) -> Row | None:
    return next((r for r in rows if r["name"] == name), None)


def floor_row(rows: list[Row], flow: str, batch: int, concurrency: int) -> Row | None:
    return find(rows, workload_name("floor", flow, batch, concurrency))


def primary_metric(row: Row) -> str:
    return "jobs_per_s" if row["batch"] == 1 else "reports_per_s"


def evaluate(rows: list[Row]) -> list[Row]:
    """One line per target (the memory target last): measured, baseline, ratio, pass/fail."""
    lines: list[Row] = []
    for t in TARGETS:
        row = find(rows, t.workload)
        base = find(rows, t.baseline_workload)
        available = row is not None and row.get("status", "ok") == "ok"
        measured = row[t.metric] if available and row is not None else None
        base_value = base[t.metric] if base is not None and base.get("status", "ok") == "ok" else None
        r = ratio(measured, base_value)
        p99 = row["latency"]["p99_ms"] if available and row is not None else None
        errors = sum(row["errors"].values()) if available and row is not None else None
        checks = [meets(r, at_least=t.min_ratio), meets(None if errors is None else float(errors), at_most=0)]
        if t.max_p99_ms is not None:
            checks.append(meets(p99, at_most=t.max_p99_ms))
        lines.append(
            {
                "target": t.label,
                "workload": t.workload,
                "baseline": t.baseline,
                "baseline_workload": t.baseline_workload,
                "metric": t.unit,
                "measured": measured,
                "floor": base_value,
                "ratio": r,
                "p99_ms": p99,
                "errors": errors,
                "goal": t.text + ", no errors",
                "result": verdict(*checks) if available else ("not available" if row is not None else "not run"),
                "status": row.get("status", "ok") if row is not None else "not run",
            }
        )
    embedded = [r for r in rows if r["deployment"] == "embedded" and r.get("status", "ok") == "ok"]
    peaks = [r["resources"].get("peak_rss_mb") for r in embedded if r.get("resources")]
    peak = max((p for p in peaks if p is not None), default=None)
    lines.append(
        {
            "target": "memory, embedded, XGBoost only, under load",
            "workload": "all embedded workloads",
            "metric": "peak RSS MB",
            "measured": peak,
            "floor": None,
            "ratio": None,
            "p99_ms": None,
            "errors": None,
            "goal": f"<= {MEMORY_TARGET_MB:g} MB RSS",
            "result": verdict(meets(peak, at_most=MEMORY_TARGET_MB)),
            "status": "ok" if peak is not None else "not run",
        }
    )
    return lines


def target_for(name: str) -> Target | None:
    """The floor target of the workload ``name``, if it has one."""
    return next((t for t in FLOOR_TARGETS if t.workload == name), None)
