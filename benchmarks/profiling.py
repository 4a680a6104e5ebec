"""``--profile``: a separate embedded instance under the target workloads, profiled (yappi, py-spy, pyinstrument or
the fallback sampler), and the summary of its profile for RESULTS.md."""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import services
from benchmarks.loadgen import Flow
from benchmarks.suite import Suite


def profile_embedded(suite: Suite) -> dict[str, Any]:
    """Profile a separate embedded instance (so the measured runs carry no profiler overhead)."""
    out: Path = suite.args.out
    venv_spy = services.VENV_BIN / "py-spy"
    py_spy = shutil.which("py-spy") or (str(venv_spy) if venv_spy.exists() else None)
    profiler_cmd: list[str] | None = None
    sampler_out = out / "profile-embedded.folded"
    for stale in (sampler_out, Path(f"{sampler_out}.start"), Path(f"{sampler_out}.stop")):
        stale.unlink(missing_ok=True)
    control = out / "cpu-profile"
    for stale in (Path(f"{control}.start"), Path(f"{control}.stop")):
        stale.unlink(missing_ok=True)
    tool: str
    if importlib.util.find_spec("yappi") is not None:
        tool = "yappi"
        profiler_cmd = [sys.executable, "-m", "benchmarks.cpu_profile", "--control", str(control)]
    elif py_spy:
        tool = "py-spy"
    elif importlib.util.find_spec("pyinstrument") is not None:
        tool = "pyinstrument"
        profiler_cmd = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out / "profile-embedded.txt")]
    else:
        tool = "sampler"
        profiler_cmd = [sys.executable, "-m", "benchmarks.sampler", "-o", str(sampler_out)]
    suite.log(f"profile: {tool}")
    server = services.embedded_server(out, suite.service_cpus, name="embedded-profiled", profile=profiler_cmd)
    server.start()
    spy: subprocess.Popen[bytes] | None = None
    rows_before = len(suite.rows)
    try:
        server.wait_ready()
        suite.sync_available["embedded-profiled"] = services.probe_sync(server.url)
        if tool == "py-spy" and py_spy:
            spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(server.pid), "--format", "raw", "--threads", "--rate", "200",
                 "--output", str(sampler_out), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        if tool == "sampler":
            Path(f"{sampler_out}.start").touch()
        profiled_matrix: tuple[tuple[Flow, int, int], ...] = (
            ("async", 1, 64),
            ("sync", 1, 8),
            ("async", 100, 64),
            ("sync", 100, 8),
        )
        for flow, batch, conc in profiled_matrix:
            target = out / f"cpu-profile-{flow}-b{batch}-c{conc}.pstat"
            if tool == "yappi":
                target.unlink(missing_ok=True)
                Path(f"{control}.start").write_text(str(target))
            suite.workload("embedded-profiled", server.url, flow, batch, conc, [server.pid])
            if tool == "yappi":
                Path(f"{control}.stop").touch()
                deadline = time.monotonic() + 60
                while not target.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
        if tool == "sampler":
            Path(f"{sampler_out}.stop").touch()
            deadline = time.monotonic() + 15
            while not sampler_out.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        server.stop()
        suite.remove_data("embedded-profiled")
    profiled = suite.rows[rows_before:]
    del suite.rows[rows_before:]  # profiled runs may be slower: not results
    summary = summarize_profile(tool, out, profiled)
    return {"tool": tool, "workloads": profiled, **summary}


def summarize_profile(tool: str, out: Path, profiled: list[dict[str, Any]]) -> dict[str, Any]:
    """A text summary of the profile for RESULTS.md, and the path of the full one."""
    workloads = ", ".join(
        f"{r['name'].removeprefix('embedded-profiled ')} ({r.get('jobs_per_s', 0):,.0f} jobs/s)"
        for r in profiled
        if r.get("status") == "ok"
    )
    intro = (
        f"A separate embedded instance, profiled while it ran {workloads} (about {len(profiled)} x the workload "
        "duration). "
    )
    if tool == "yappi":
        parts = []
        for r in profiled:
            flow, batch, conc = r.get("flow"), r.get("batch"), r.get("concurrency")
            text_path = out / f"cpu-profile-{flow}-b{batch}-c{conc}.pstat.txt"
            text = text_path.read_text() if text_path.exists() else "no profile written"
            parts.append(f"#### {flow} B={batch} C={conc}\n\n```\n{text}\n```")
        md = (
            f"{intro}Profiler: yappi, CPU clock, every thread, one profile per workload (`benchmarks/cpu_profile.py`; "
            "pstats files `cpu-profile-*.pstat` in the output directory). CPU time per thread, then per function; "
            "the profiler's hooks inflate Python-heavy functions, so read shares, not absolute times:\n\n"
            + "\n\n".join(parts)
        )
        return {"summary_md": md, "path": str(out)}
    if tool in ("py-spy", "sampler"):
        from benchmarks.sampler import summarize

        path = out / "profile-embedded.folded"
        if not path.exists():
            return {"summary_md": f"{tool} wrote no output.", "path": None}
        text = summarize(path.read_text())
        (out / "profile-embedded.txt").write_text(text + "\n")
        how = (
            "py-spy (all threads)"
            if tool == "py-spy"
            else "`benchmarks/sampler.py` (py-spy and pyinstrument are not installed): wall-clock samples of every "
            "thread's Python stack every 5 ms; C code is charged to the Python frame that called it; 'busy' "
            "excludes parked threads (waiting on a queue, a condition, or the event loop's own C code and I/O wait)"
        )
        md = (
            f"{intro}Profiler: {how}. Per thread group, the share of busy samples by function "
            f"(full collapsed stacks: `{path.name}` in the output directory, usable with flamegraph tools):"
            f"\n\n```\n{text}\n```"
        )
        return {"summary_md": md, "path": str(path)}
    path = out / "profile-embedded.txt"
    text = path.read_text() if path.exists() else "pyinstrument wrote no output."
    return {"summary_md": f"{intro}pyinstrument (main thread):\n\n```\n{text[:8000]}\n```", "path": str(path)}
