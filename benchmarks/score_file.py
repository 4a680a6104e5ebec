"""``reportscore score-file`` throughput, memory and resume, against the raw model in the same run.

Generates N synthetic reports (``scoring/synthetic.py``) with planted invalid rows, scores the file with the real
command in a child process (rows/s, the child's peak RSS, rejects), stops a second run after K chunks and resumes it
(the output must equal the full run's, without a duplicated row), and measures the raw model's rows/s at batch 1,000
in this process with the service's thread setting. Prints a Markdown table.

    .venv/bin/python -m benchmarks.score_file --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from reportscore.scoring.synthetic import generate_reports

BAD_EVERY = 1000
"""One planted invalid row in this many (popularity out of range, an unknown abuse type or a missing value)."""


def write_input(path: Path, rows: int, *, seed: int = 7) -> int:
    """Write ``rows`` reports with an ``id`` column to ``path`` (CSV or Parquet by suffix); returns the bad rows."""
    columns: dict[str, Any] = generate_reports(rows, seed=seed)
    bad = np.arange(BAD_EVERY // 2, rows, BAD_EVERY)
    popularity = columns["popularity"].copy()
    popularity[bad[0::3]] = 9
    abuse = columns["abuse_type"].copy()
    abuse[bad[1::3]] = "ABUSE"
    matches = pa.array(columns["lifetime_matches_created"], mask=np.isin(np.arange(rows), bad[2::3]))
    table = pa.table(
        {
            "id": pa.array([f"r{i:08d}" for i in range(rows)]),
            "abuse_type": pa.array(abuse.tolist(), pa.string()),
            "report_text_len": columns["report_text_len"],
            "profile_rating": np.round(columns["profile_rating"], 4),
            "popularity": popularity,
            "lifetime_matches_created": matches,
        }
    )
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    return len(bad)


def run_cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``reportscore score-file`` in a child; its wall time, peak RSS, exit code and reported rows/s."""
    command = [sys.executable, "-m", "reportscore.cli", "score-file", *args]
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: waiting for the child cannot block its writes
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own resource usage (peak RSS)
        wall_s = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        stderr = log.read()
    if proc.returncode != 0:
        raise RuntimeError(f"score-file exited {proc.returncode}: {stderr}")
    rate = re.search(r"\(([\d,]+) rows/s\)", stderr)
    return {
        "wall_s": wall_s,
        "rows_per_s": float(rate.group(1).replace(",", "")) if rate else float("nan"),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "stderr": stderr.strip(),
    }


def raw_model_rate(batch: int = 1000, seconds: float = 3.0) -> dict[str, float]:
    """The served model's rows/s at ``batch`` rows in this process: encode+predict from columns, and predict only."""
    from reportscore.scoring.registry import formats_with, load_model_dir
    from reportscore.settings import Settings

    settings = Settings()
    model = load_model_dir(
        settings.model_path,
        threads=settings.model_threads,
        formats=formats_with([], compile_trees=settings.compile_trees),
    )
    columns = generate_reports(batch, seed=11)
    matrix = model.schema.encode(columns)

    def rate(fn: Any) -> float:
        fn()
        calls, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            fn()
            calls += 1
        return batch * calls / elapsed

    return {
        "score_rows_per_s": rate(lambda: model.score(columns)),
        "predict_rows_per_s": rate(lambda: model.model.predict(matrix)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv", help="input and output format")
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--stop-after", type=int, default=3, help="chunks the interrupted run completes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="score-file-bench-") as tmp:
        work = Path(tmp)
        source = work / f"in.{args.format}"
        planted = write_input(source, args.rows)
        env = dict(os.environ, REPORTSCORE_DATA_DIR=str(work / "data"))
        common = ["--id-column", "id", "--chunk-rows", str(args.chunk_rows)]
        full = run_cli([str(source), "-o", str(work / f"full.{args.format}"), *common], env)
        rejects = _rows(work / f"full.rejects.{args.format}")
        target = work / f"resumed.{args.format}"
        stopped = run_cli([str(source), "-o", str(target), *common, "--stop-after-chunks", str(args.stop_after)], env)
        resumed = run_cli([str(source), "-o", str(target), *common, "--resume"], env)
        same = _column(target, "row") == _column(work / f"full.{args.format}", "row")
        unique = len(set(_column(target, "row"))) == len(_column(target, "row"))
        raw = raw_model_rate()
    ratio = full["rows_per_s"] / raw["score_rows_per_s"]
    print(f"score-file, {args.rows:,} rows ({args.format}, chunks of {args.chunk_rows:,}), model threads 1\n")
    print("| measure | value |\n|---|---|")
    print(f"| score-file rows/s (whole run, excl. start-up) | {full['rows_per_s']:,.0f} |")
    print(f"| wall time incl. start-up (s) | {full['wall_s']:.1f} |")
    print(f"| peak RSS of the child (MB) | {full['peak_rss_mb']:,.0f} |")
    print(f"| rejects (planted) | {rejects:,} ({planted:,}) |")
    print(f"| interrupted run: chunks done, wall s | {args.stop_after}, {stopped['wall_s']:.1f} |")
    print(
        f"| resumed run: wall s, rows/s, output equals the full run, no duplicate row | "
        f"{resumed['wall_s']:.1f}, {resumed['rows_per_s']:,.0f}, {same}, {unique} |"
    )
    print(f"| raw model rows/s at batch 1,000 (encode + predict) | {raw['score_rows_per_s']:,.0f} |")
    print(f"| raw model rows/s at batch 1,000 (predict only) | {raw['predict_rows_per_s']:,.0f} |")
    print(f"| ratio score-file / raw (encode + predict) | {ratio:.0%} |")
    print(f"| ratio score-file / raw (predict only) | {full['rows_per_s'] / raw['predict_rows_per_s']:.0%} |")


def _column(path: Path, name: str) -> list[Any]:
    if path.suffix == ".parquet":
        return list(pq.read_table(path, columns=[name]).column(name).to_pylist())
    opts = pacsv.ConvertOptions(include_columns=[name])
    return list(pacsv.read_csv(path, convert_options=opts).column(name).to_pylist())


def _rows(path: Path) -> int:
    return len(_column(path, "row"))


if __name__ == "__main__":
    main()
