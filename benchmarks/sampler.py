"""A wall-clock sampling profiler of every thread of a Python process, for when neither py-spy nor pyinstrument
is installed (``benchmarks.run --profile`` picks py-spy, then pyinstrument, then this).

It runs the profiled program in the same process and, from a background thread, records every thread's Python
stack every ``--interval`` seconds (``sys._current_frames()``), only between two control files, so start-up is not
counted::

    python -m benchmarks.sampler -o out.folded -m reportscore.cli serve --port 8081
    touch out.folded.start   # start sampling
    touch out.folded.stop    # write out.folded (collapsed stacks, "thread;frame;frame count") and stop

Limits: it sees Python frames only (time inside C code, e.g. XGBoost or SQLite's fsync, is attributed to the Python
frame that called it, which is what we want); it cannot tell a thread running from one waiting for the GIL; and the
sampling thread takes the GIL a few hundred times a second (~1% overhead).
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

# Leaf frames of threads that are parked, not working: excluded from "busy" summaries.
IDLE_LEAVES = frozenset(
    {
        "wait (threading.py)",
        "get (queue.py)",
        "_worker (thread.py)",
        "select (selectors.py)",
        "_wait_for_tstate_lock (threading.py)",
        "sleep (sampler.py)",
        "wait (_base.py)",
        "run (runners.py)",  # the main thread inside uvloop's C loop: waiting for I/O, or in C (httptools, uvloop)
    }
)


def frame_label(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_name} ({os.path.basename(code.co_filename)})"


def stack_of(frame: FrameType | None, limit: int = 80) -> list[str]:
    stack: list[str] = []
    while frame is not None and len(stack) < limit:
        stack.append(frame_label(frame))
        frame = frame.f_back
    stack.reverse()
    return stack


def thread_group(name: str) -> str:
    """Group thread names: ``scoring_0`` and ``scoring_1`` -> ``scoring``, ``AnyIO worker thread`` as is."""
    return name.rstrip("0123456789_-").strip() or name


class Sampler:
    def __init__(self, out: Path, interval_s: float) -> None:
        self.out = out
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self.written = False

    def run(self) -> None:
        start_file = Path(str(self.out) + ".start")
        stop_file = Path(str(self.out) + ".stop")
        while not start_file.exists():
            time.sleep(0.05)
        me = threading.get_ident()
        names: dict[int, str] = {}
        while not stop_file.exists():
            if self.samples % 50 == 0:
                names = {t.ident: t.name for t in threading.enumerate() if t.ident is not None}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                group = thread_group(names.get(ident, "thread"))
                self.counts[";".join([group, *stack_of(frame)])] += 1
            self.samples += 1
            time.sleep(self.interval_s)
        self.write()

    def write(self) -> None:
        if self.written:
            return
        self.written = True
        lines = [f"{stack} {n}" for stack, n in self.counts.most_common()]
        self.out.write_text("\n".join(lines) + "\n")


def summarize(folded: str, top: int = 12) -> str:
    """Per thread group: share of samples busy (not parked), and the functions with most inclusive busy samples."""
    per_group_total: Counter[str] = Counter()
    per_group_busy: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    own: dict[str, Counter[str]] = {}
    example: dict[str, list[str]] = {}
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        group, *frames = stack.split(";")
        per_group_total[group] += count
        if not frames or frames[-1] in IDLE_LEAVES:
            continue
        per_group_busy[group] += count
        example.setdefault(group, frames)
        inc = inclusive.setdefault(group, Counter())
        for label in set(frames):
            inc[label] += count
        own.setdefault(group, Counter())[frames[-1]] += count
    out: list[str] = []
    for group, total in per_group_total.most_common():
        busy = per_group_busy[group]
        if busy == 0:
            continue
        out.append(f"[{group}] {busy} busy samples of {total} ({100 * busy / total:.0f}%)")
        out.append("  own (leaf) frames:")
        for label, n in own[group].most_common(top):
            out.append(f"    {100 * n / busy:5.1f}%  {label}")
        common = [label for label in example[group] if inclusive[group][label] == busy]
        if common:
            out.append(f"  every busy sample is under: {common[-1]}")
        out.append("  inclusive (frame on the stack):")
        below = [(label, n) for label, n in inclusive[group].most_common() if n < busy]
        for label, n in below[:top]:
            out.append(f"    {100 * n / busy:5.1f}%  {label}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, required=True, help="collapsed-stacks file to write")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between samples [0.005]")
    parser.add_argument("-m", dest="module", required=True, help="module to run as __main__")
    args, rest = parser.parse_known_args()
    sampler = Sampler(args.output, args.interval)
    threading.Thread(target=sampler.run, name="benchmark-sampler", daemon=True).start()
    sys.argv = [args.module, *rest]
    try:
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    finally:
        if sampler.samples:
            sampler.write()


if __name__ == "__main__":
    main()
