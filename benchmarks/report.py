"""RESULTS.md rendering: the target table (``targets.py``), every workload, the floors, the profile."""

from __future__ import annotations

import re
from typing import Any

from benchmarks.stats import fmt_num, fmt_pct, ratio
from benchmarks.targets import ANCHOR_TARGETS, FLOOR_TARGETS, Row, find, floor_row, primary_metric

_SITE_PACKAGES = re.compile(r"(?<![\w.])/[^\s:()\"']*?/site-packages/")
_STDLIB = re.compile(r"(?<![\w.])/[^\s:()\"']*?/lib/python3\.\d+/")


def portable(text: str, *, checkout: str) -> str:
    """``text`` with paths that read the same on any machine: files of the checkout relative to it, installed
    packages under ``site-packages/``, the standard library under ``<stdlib>/``."""
    text = text.replace(checkout.rstrip("/") + "/", "")
    text = _SITE_PACKAGES.sub("site-packages/", text)
    return _STDLIB.sub("<stdlib>/", text)


def _errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in errors.items()) if errors else "0"


def _ms(value: float | None) -> str:
    return fmt_num(value, 1)


def main_table(rows: list[Row], evaluation: list[Row]) -> list[str]:
    """Every workload beside its floor: measured, floor, ratio, p99, target, pass/fail."""
    by_target = {e["workload"]: e for e in evaluation if e.get("baseline", "floor") == "floor"}
    out = [
        "| workload | metric | measured | floor | ratio | p99 ms | errors | target | result |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        if row["deployment"] in ("floor", "mlserver") or row.get("shadow"):
            continue
        metric = primary_metric(row)
        unit = "reports/s" if row["batch"] != 1 else ("jobs/s" if row["flow"] == "async" else "req/s")
        if row.get("status", "ok") != "ok":
            out.append(f"| {row['name']} | {unit} | {row['status']} | | | | | | |")
            continue
        if row["arrival"] == "open":
            floor = floor_row(rows, row["flow"], row["batch"], row["floor_concurrency"])
            floor_value = floor[metric] if floor else None
            offered = row["offered_rate"] * (row["batch"] if metric == "reports_per_s" else 1)
            achieved = row[metric]
            basis = f"; offered = {row['rate_basis']}" if row.get("rate_basis") else ""
            out.append(
                f"| {row['name']} (offered {fmt_num(offered)} {unit}{basis}) | {unit} achieved | {fmt_num(achieved)} | "
                f"{fmt_num(floor_value)} | {fmt_pct(ratio(achieved, floor_value))} | "
                f"{_ms(row['latency']['p99_ms'])} | {_errors_text(row['errors'])} | "
                f"info: achieved/offered {fmt_pct(ratio(achieved, offered))} | info |"
            )
            continue
        floor_flow = "sync" if row["flow"] == "sync-nopersist" else row["flow"]
        floor = floor_row(rows, floor_flow, row["batch"], row["concurrency"])
        floor_value = floor[metric] if floor else None
        ev = by_target.get(row["name"])
        out.append(
            f"| {row['name']} | {unit} | {fmt_num(row[metric])} | {fmt_num(floor_value)} | "
            f"{fmt_pct(ratio(row[metric], floor_value))} | {_ms(row['latency']['p99_ms'])} | "
            f"{_errors_text(row['errors'])} | {ev['goal'] if ev else '-'} | "
            f"{('**' + ev['result'] + '**') if ev else '-'} |"
        )
    mem = evaluation[-1]
    out.append(
        f"| {mem['target']} | peak RSS MB | {fmt_num(mem['measured'], 1)} | | | | | {mem['goal']} | "
        f"**{mem['result']}** |"
    )
    return out


def anchor_table(rows: list[Row], evaluation: list[Row], anchor: Row | None) -> list[str]:
    """The MLServer anchor's own rows, then the targets measured against it."""
    anchored = [ev for ev in evaluation if ev.get("baseline") == "mlserver"]
    if anchor is None or anchor.get("status") != "ok":
        status = "not run" if anchor is None else anchor.get("status")
        if not anchored:
            return [f"MLServer anchor: {status}."]
        out = [f"MLServer anchor: {status}.", ""]
    else:
        out = [
            f"MLServer {anchor.get('version', '?')} ({anchor.get('pins', '')}), V2 REST `{anchor.get('infer_path')}`, "
            f"output `predict_proba`, parallel_workers {anchor.get('parallel_workers')}, on the service's core(s); "
            f"its scores differ from XGBoost's own by at most {anchor.get('max_abs_diff')} "
            f"({anchor.get('agreement_reports')} reports). It is sent the encoded features, the service the reports.",
            "",
        ]
    out += [
        "| workload | metric | measured | MLServer | ratio | p99 ms | errors | target | result |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        if row["deployment"] == "mlserver":
            metric = primary_metric(row)
            unit = "reports/s" if row["batch"] != 1 else "req/s"
            if row.get("status", "ok") != "ok":
                out.append(f"| {row['name']} | {unit} | {row['status']} | | | | | | |")
                continue
            out.append(
                f"| {row['name']} | {unit} | {fmt_num(row[metric])} | | | {_ms(row['latency']['p99_ms'])} | "
                f"{_errors_text(row['errors'])} | - | - |"
            )
    for ev in anchored:
        times = "-" if ev["ratio"] is None else fmt_num(ev["ratio"], 2) + "x"
        out.append(
            f"| {ev['workload']} | {ev['metric']} | {fmt_num(ev['measured'])} | {fmt_num(ev['floor'])} | "
            f"{times} | {_ms(ev['p99_ms'])} | {'' if ev['errors'] is None else ev['errors']} | "
            f"{ev['goal']} | **{ev['result']}** |"
        )
    return out


def shadow_table(rows: list[Row], evaluation: list[Row]) -> list[str]:
    """The champion without and with one shadow at fraction 1 (``shadow_cost.py``), and the shadow's accounting."""
    shadowed = {ev["workload"]: ev for ev in evaluation if ev.get("baseline") == "shadow off"}
    out = [
        "| workload | metric | without a shadow | with one shadow | ratio | p99 ms (with) | errors | shadow scored "
        "| shadow skipped | target | result |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        if row.get("shadow") != "on" or row.get("status", "ok") != "ok":
            continue
        metric = primary_metric(row)
        unit = "reports/s" if row["batch"] != 1 else ("jobs/s" if row["flow"] == "async" else "req/s")
        off = find(rows, row["name"].replace("shadow on", "shadow off", 1))
        off_value = off[metric] if off is not None and off.get("status", "ok") == "ok" else None
        counts = row.get("shadow_reports") or {}
        ev = shadowed.get(row["name"])
        out.append(
            f"| {row['name'].removeprefix('shadow on ')} | {unit} | {fmt_num(off_value)} | {fmt_num(row[metric])} | "
            f"{fmt_pct(ratio(row[metric], off_value))} | {_ms(row['latency']['p99_ms'])} | "
            f"{_errors_text(row['errors'])} | {fmt_num(counts.get('scored'))} | {fmt_num(counts.get('skipped'))} | "
            f"{ev['goal'] if ev else '-'} | {('**' + ev['result'] + '**') if ev else '-'} |"
        )
    return out if len(out) > 2 else []


def other_cpu(row: Row) -> float | None:
    """CPU used on the machine by anything but the service and the load generator (PostgreSQL and Redis in the
    distributed rows, other jobs on a shared machine: noise), in % of one core."""
    res = row.get("resources") or {}
    machine, service, loadgen = res.get("machine_cpu_pct"), res.get("service_cpu_pct"), row.get("loadgen_cpu_pct")
    if machine is None or service is None or loadgen is None:
        return None
    return max(0.0, float(machine) - float(service) - float(loadgen))


def details_table(rows: list[Row]) -> list[str]:
    out = [
        "| workload | jobs/s | reports/s | p50 ms | p95 ms | p99 ms | max ms | errors | checked | "
        "service peak RSS MB | service CPU % | loadgen CPU % | other CPU % | service timings (mean ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if row.get("status", "ok") != "ok":
            out.append(f"| {row['name']} | {row['status']} | | | | | | | | | | | | |")
            continue
        lat = row["latency"]
        res = row.get("resources") or {}
        timings = row.get("service_timings") or {}
        timing_text = ", ".join(
            f"{k.removeprefix('mean_').removesuffix('_ms')} {v:.1f}"
            for k, v in timings.items()
            if k.startswith("mean_") and v is not None
        )
        name = row["name"]
        if row["arrival"] == "open":
            name += f" @ {fmt_num(row['offered_rate'])} jobs/s"
        out.append(
            f"| {name} | {fmt_num(row['jobs_per_s'])} | {fmt_num(row['reports_per_s'])} | {_ms(lat['p50_ms'])} | "
            f"{_ms(lat['p95_ms'])} | {_ms(lat['p99_ms'])} | {_ms(lat['max_ms'])} | {_errors_text(row['errors'])} | "
            f"{row['checked']} | {fmt_num(res.get('peak_rss_mb'), 1)} | {fmt_num(res.get('service_cpu_pct'))} | "
            f"{fmt_num(row.get('loadgen_cpu_pct'))} | {fmt_num(other_cpu(row))} | {timing_text or '-'} |"
        )
    return out


def model_table(model_floors: list[Row]) -> list[str]:
    out = [
        "| predictor | model threads | cores | batch | predict rows/s | µs per call | encode+predict rows/s "
        "| µs per call |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for m in model_floors:
        cpus = m["cpus"] if isinstance(m["cpus"], str) else ",".join(str(c) for c in m["cpus"])
        out.append(
            f"| {m.get('predictor', 'xgboost')} | {m['threads']} | {cpus} | {m['batch']:,} | "
            f"{fmt_num(m['predict_rows_per_s'])} | "
            f"{fmt_num(m['predict_us_per_call'], 1)} | {fmt_num(m['encode_predict_rows_per_s'])} | "
            f"{fmt_num(m['encode_predict_us_per_call'], 1)} |"
        )
    return out


def storage_table(storage_floors: list[Row]) -> list[str]:
    out = [
        "| flow | reports per job | jobs per transaction | reports already stored | queue index | store CPU µs per job "
        "| µs per report | of which submit / result |",
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for s in storage_floors:
        split = (
            f"{fmt_num(s['submit_us_per_job'])} / {fmt_num(s['result_us_per_job'])}" if "submit_us_per_job" in s else ""
        )
        out.append(
            f"| {s['flow']} | {s['batch']:,} | {s['jobs_per_transaction']} | {s.get('stored_reports', 0):,} | "
            f"{'yes' if s.get('queue_index', True) else 'dropped'} | {fmt_num(s['cpu_us_per_job'])} | "
            f"{fmt_num(s['cpu_us_per_report'], 1)} | {split} |"
        )
    return out


def budget_rows(results: Row) -> list[Row]:
    """For each embedded target: the one-core CPU budget per job at the target rate, against a lower bound of what
    a job must cost the service — the floor app's own work per job (it saturates its core), the store's writes
    (storage floor) and the model at its cheapest per row (model floor, service setting) — and so the highest ratio
    any implementation with these writes and this model could reach on one core. A target against MLServer takes
    MLServer's CPU per job as its baseline (it saturates its core too). The durable ``/score`` B=100 rows take the
    store's writes on the grown store when it was measured: the benchmark's store is grown by then."""
    rows: list[Row] = results["workloads"]
    floors = results.get("storage_floors") or []
    storage = {(s["flow"], s["batch"]): s for s in floors if not s.get("stored_reports")}
    grown = {(s["flow"], s["batch"]): s for s in floors if s.get("stored_reports") and s.get("queue_index", True)}
    single = [m for m in results.get("model_floors") or [] if m["threads"] == 1]
    best_row_us = min((1e6 / m["predict_rows_per_s"] for m in single if m["predict_rows_per_s"]), default=None)
    out: list[Row] = []
    for t in (*FLOOR_TARGETS, *ANCHOR_TARGETS):
        if t.deployment != "embedded" or t.flow not in ("async", "sync"):
            continue
        floor = floor_row(rows, t.flow, t.batch, t.concurrency)
        base = floor if t.baseline == "floor" else find(rows, t.baseline_workload)
        store = grown.get((t.flow, t.batch)) or storage.get((t.flow, t.batch))
        if floor is None or base is None or store is None or best_row_us is None:
            continue
        if not floor.get("jobs_per_s") or not base.get("jobs_per_s") or base.get("status", "ok") != "ok":
            continue
        floor_us = 1e6 / floor["jobs_per_s"]
        base_us = 1e6 / base["jobs_per_s"]
        model_us = best_row_us * t.batch
        least_us = floor_us + store["cpu_us_per_job"] + model_us
        out.append(
            {
                "target": t.label,
                "min_ratio": t.min_ratio,
                "baseline": t.baseline,
                "budget_us_per_job": base_us / t.min_ratio,
                "floor_us_per_job": floor_us,
                "store_us_per_job": store["cpu_us_per_job"],
                "store_stored_reports": store.get("stored_reports", 0),
                "model_us_per_job": model_us,
                "least_us_per_job": least_us,
                "ceiling_ratio": base_us / least_us,
            }
        )
    return out


def budget_table(results: Row) -> list[str]:
    out = [
        "| target | CPU budget per job at the target | floor app's work | store writes | model (cheapest) | "
        "least a job costs | highest reachable ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for b in budget_rows(results):
        anchor = b["baseline"] == "mlserver"
        at = f"≥ {b['min_ratio']:g}x MLServer" if anchor else f"≥ {b['min_ratio']:.0%}"
        grown = f" ({b['store_stored_reports']:,} stored)" if b["store_stored_reports"] else ""
        ceiling = f"{b['ceiling_ratio']:.2f}x" if anchor else fmt_pct(b["ceiling_ratio"])
        out.append(
            f"| {b['target']} ({at}) | {fmt_num(b['budget_us_per_job'])} µs | "
            f"{fmt_num(b['floor_us_per_job'])} µs | {fmt_num(b['store_us_per_job'])} µs{grown} | "
            f"{fmt_num(b['model_us_per_job'])} µs | {fmt_num(b['least_us_per_job'])} µs | {ceiling} |"
        )
    return out


def observations(rows: list[Row], evaluation: list[Row], service_cpus: int) -> list[str]:
    """Mechanical hints for each unmet target: CPU saturation, errors, the service's own timings."""
    notes: list[str] = []
    for ev in evaluation[:-1]:
        if ev["result"] != "fail":
            continue
        row = find(rows, ev["workload"])
        if row is None:
            continue
        res = row.get("resources") or {}
        cpu = res.get("service_cpu_pct")
        of = {"mlserver": "MLServer", "shadow off": "the champion without a shadow"}.get(
            ev.get("baseline", ""), "the floor"
        )
        parts = [f"**{ev['target']}** ({fmt_pct(ev['ratio'])} of {of}, p99 {_ms(ev['p99_ms'])} ms)"]
        if cpu is not None:
            saturated = cpu >= 85 * service_cpus
            parts.append(
                f"service processes used {cpu:.0f}% CPU on {service_cpus} pinned core(s)"
                + (" — CPU-bound" if saturated else " — not CPU-bound: waiting (fsync, locks, broker, database)")
            )
        if row.get("loadgen_cpu_pct") is not None and row["loadgen_cpu_pct"] >= 85:
            parts.append(f"the load generator used {row['loadgen_cpu_pct']:.0f}% of its core (may be the limit)")
        timings = row.get("service_timings") or {}
        if timings:
            parts.append(
                "service-reported mean timings: "
                + ", ".join(
                    f"{k.removeprefix('mean_')} {v:.1f}" for k, v in timings.items() if k.startswith("mean_") and v
                )
            )
        if row["errors"]:
            parts.append(f"errors: {_errors_text(row['errors'])}")
        notes.append("- " + "; ".join(parts) + ".")
    return notes


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    cfg = results["config"]
    rows: list[Row] = results["workloads"]
    evaluation: list[Row] = results["targets"]
    in_tree = str(cfg.get("service_src", "working tree")).startswith("working tree")
    dirty_note = ", with uncommitted changes in src/" if m.get("git_dirty") and in_tree else ""
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{cfg['command']}` on {results['finished_at']} (commit `{m.get('git_commit', '?')}`"
        f"{dirty_note}). Method, workloads and "
        "options: [README.md](README.md). Raw numbers: "
        f"[{cfg['results_json_name']}]({cfg['results_json_name']}).",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['cpus']} cores; memory {m['memory_gb']:.1f} GB; {m['os']}",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        f"- Shared services: PostgreSQL {m['servers'].get('postgresql', '-')}, Redis {m['servers'].get('redis', '-')}",
        f"- Pinning: load generator on core {cfg['loadgen_cpu']}; floor app, API and workers on core(s) "
        f"{','.join(str(c) for c in cfg['service_cpus'])} (taskset); PostgreSQL and Redis are shared machine services, "
        "not pinned (they float over both cores). "
        + (
            "With 2 cores this gives the service one core and the generator the other."
            if m["cpus"] == 2
            else "Adjust with `--loadgen-cpu` / `--service-cpus`."
        ),
        f"- Each workload: {cfg['warmup_s']:g} s warm-up, then {cfg['duration_s']:g} s measured; HTTP client "
        f"`{cfg['client']}`; scores checked against the in-process model (1e-6) on every {cfg['check_every']} job(s); "
        f"distributed = API + {cfg['dist_workers']} x `reportscore worker --concurrency={cfg['dist_concurrency']}`.",
        f"- Service code: {cfg.get('service_src', 'working tree (src/)')}; `POST /score`: "
        f"{results['sync_available_text']}.",
        "",
        "## Targets and every workload, as ratios to the floors of this run",
        "",
        "Floors: the minimal FastAPI app (`benchmarks/floor_app.py`, same pydantic models, constant scores, same "
        "uvicorn settings) under the same workload (flow, B and C). `measured` is jobs/s (async), req/s (sync) at "
        "B=1 and reports/s at B=100; latency is submit → result. Open-loop rows offer Poisson arrivals at the "
        "target rate (target ratio x floor), or at 80% of the service's own closed-loop best when it cannot "
        "sustain the target rate, and report what was achieved (latency from the scheduled arrival).",
        "",
        *main_table(rows, evaluation),
        "",
        "## Against MLServer (the same model served by MLServer, same load generator, same core)",
        "",
        *anchor_table(rows, evaluation, results.get("mlserver")),
        "",
        *(
            [
                "## One shadow at fraction 1 (the champion's throughput without and with it)",
                "",
                "The embedded service started twice in this run (`benchmarks/shadow_cost.py`), the second time with "
                "a copy of the reference model shadowing the champion on every report. The shadow's scored and "
                "skipped reports are counted over the workload (warm-up included) from the service's `/metrics`.",
                "",
                *shadow_table(rows, evaluation),
                "",
            ]
            if shadow_table(rows, evaluation)
            else []
        ),
        "## Raw-model floor (reference XGBoost model, in-process: XGBoost's own predictor and the compiled trees)",
        "",
        *model_table(results["model_floors"]),
        "",
        *(
            [
                "## Storage floor (the embedded store's write path, in-process; `benchmarks/storage_floor.py`)",
                "",
                "CPU time of the writing thread per job (fsync waits excluded), SQLite in WAL with "
                "`synchronous=FULL`, the service's repository functions, on the service's core:",
                "",
                *storage_table(results["storage_floors"]),
                "",
                "## One-core budget per job (embedded targets)",
                "",
                "The floor app saturates its core, so 1 / its rate is its CPU per job; a target ratio r allows the "
                "service 1 / r times that (against MLServer, which saturates its core too: 1 / r times MLServer's "
                "CPU per job). No implementation can spend less per job than the floor app's work "
                "(HTTP and validation), the store's writes (storage floor) and the model at its cheapest per row "
                "(model floor): their sum bounds the ratio reachable on one core while every report is a durable "
                "row of its own and the moderation queue's index is kept at write time. The durable `/score` "
                "B=100 rows count the store's writes on the grown store.",
                "",
                *budget_table(results),
                "",
            ]
            if results.get("storage_floors")
            else []
        ),
        "## Details",
        "",
        *details_table(rows),
        "",
        "Service CPU % is the sum over the service's processes (100% = one core). Peak RSS is the largest sum of "
        "VmRSS over the service's processes sampled every 0.2 s during the workload (the distributed rows count the "
        "API and worker processes, not the shared PostgreSQL and Redis). Other CPU % is what the rest of the machine "
        "used meanwhile (PostgreSQL and Redis in distributed rows; otherwise other jobs on the machine, i.e. noise). "
        "Service timings are the service's own `timings` (queued, predict, total) averaged over the checked answers.",
        "",
    ]
    notes = observations(rows, evaluation, len(cfg["service_cpus"]))
    if notes:
        lines += ["## What limits the unmet targets (mechanical observations)", "", *notes, ""]
    problems = {dep: p for dep, p in (results.get("service_log_problems") or {}).items() if p}
    if problems:
        lines += ["## Warnings and errors in the service logs during the run", ""]
        for dep, counts in problems.items():
            lines += [f"- {dep}: " + "; ".join(f"{key}: {n}x" for key, n in list(counts.items())[:10])]
        lines.append("")
    profile = results.get("profile")
    if profile:
        lines += ["## Profile", "", profile.get("summary_md", ""), ""]
    return "\n".join(lines)
