"""A CPU profile of every thread of a Python process with yappi (``benchmarks.run --profile`` prefers it when yappi is
installed: it is in the dev dependency group).

Wall-clock samplers (py-spy, ``benchmarks/sampler.py``) cannot tell a thread that runs from one that waits for the
GIL, and on one core nearly every thread is waiting for it: they blame whoever happens to hold a frame. yappi counts
each thread's own CPU time per function (``clock_type="cpu"``), so shares add up to where the core went. It slows
Python code down (deterministic hooks), so the profiled runs are not results; the relative shares are what it is for.

It runs the profiled program in the same process and profiles only between two control files, so start-up is not
counted, as many times as asked (one profile per workload)::

    python -m benchmarks.cpu_profile --control ctl -m reportscore.cli serve --port 8081
    echo async-b1.pstat > ctl.start   # start profiling into async-b1.pstat
    touch ctl.stop                    # write async-b1.pstat and async-b1.pstat.txt (a summary); ready for the next
"""

from __future__ import annotations

import argparse
import io
import pstats
import runpy
import sys
import threading
import time
from pathlib import Path

from benchmarks.sampler import thread_group


class CpuProfile:
    def __init__(self, control: Path) -> None:
        self.start = Path(f"{control}.start")
        self.stop = Path(f"{control}.stop")

    def run(self) -> None:
        import yappi

        while True:
            while not self.start.exists():
                time.sleep(0.05)
            output = Path(self.start.read_text().strip())
            yappi.clear_stats()
            yappi.start(builtins=True, profile_threads=True)
            started = time.monotonic()
            while not self.stop.exists():
                time.sleep(0.05)
            yappi.stop()
            seconds = time.monotonic() - started
            partial = output.with_name(output.name + ".partial")
            yappi.get_func_stats().save(str(partial), type="pstat")
            names = {t.ident: t.name for t in threading.enumerate()}
            threads = [(names.get(t.tid, t.name), t.ttot) for t in yappi.get_thread_stats()]
            Path(f"{output}.txt").write_text(summarize(partial, threads, seconds))
            self.start.unlink()
            self.stop.unlink()
            partial.rename(output)  # complete (markers cleared first): the controller waits for this name


def summarize(pstat_path: Path, threads: list[tuple[str, float]], seconds: float, top: int = 30) -> str:
    """CPU seconds per thread group (``scoring_0`` and ``scoring_1`` together), then the functions with the most own
    (``tottime``) and inclusive (``cumtime``) CPU."""
    lines = [f"CPU seconds per thread over {seconds:.0f} s of profiling (yappi, cpu clock):"]
    total = sum(ttot for _, ttot in threads) or 1.0
    groups: dict[str, float] = {}
    for name, ttot in threads:
        group = thread_group(name)
        groups[group] = groups.get(group, 0.0) + ttot
    for name, ttot in sorted(groups.items(), key=lambda kv: -kv[1]):
        if ttot >= 0.005 * total:
            lines.append(f"  {ttot:8.3f} s  {100 * ttot / total:5.1f}%  {name}")
    for key, title in (("tottime", "own CPU"), ("cumulative", "inclusive CPU")):
        buffer = io.StringIO()
        stats = pstats.Stats(str(pstat_path), stream=buffer)
        stats.sort_stats(key).print_stats(top)
        body = buffer.getvalue().split("ncalls", 1)[-1]
        lines += ["", f"Top {top} functions by {title} (all threads; times inflated by the profiler):", "ncalls" + body]
    return "\n".join(line.rstrip() for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--control", type=Path, required=True, help="control-file prefix (<prefix>.start, .stop)")
    parser.add_argument("-m", dest="module", required=True, help="module to run as __main__")
    args, rest = parser.parse_known_args()
    import yappi  # imported before the program starts its threads: an import later competes with them for the GIL

    yappi.set_clock_type("cpu")
    profile = CpuProfile(args.control)
    threading.Thread(target=profile.run, name="benchmark-cpu-profile", daemon=True).start()
    sys.argv = [args.module, *rest]
    runpy.run_module(args.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
