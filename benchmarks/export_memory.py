"""The export's memory: ``reportscore export`` over a large SQLite store must stream, not load.

Fills a throwaway SQLite store (migrated to head) with ``--reports`` reports (default 1,000,000) in jobs of 100,
spread over 30 days, scored, a tenth with a moderator outcome and a twentieth with stored reasons, by bulk inserts;
then exports it in a child process (``--format``, default parquet) into a throwaway directory and reports the
child's peak RSS growth over its RSS just before the export (the peak is reset there through
``/proc/self/clear_refs``, so imports and start-up do not count), the rows per second and the bytes written.

    .venv/bin/python -m benchmarks.export_memory                  # 1 M reports, parquet
    .venv/bin/python -m benchmarks.export_memory --format jsonl --reports 200000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPORTS_PER_JOB = 100
DAYS = 30


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def fill(url: str, n_reports: int, *, chunk: int = 50_000) -> float:
    """Bulk-insert ``n_reports`` reports (and their jobs, outcomes and reasons); seconds taken."""
    from sqlalchemy import insert

    from reportscore.storage.db import Database
    from reportscore.storage.migrate import upgrade_to_head
    from reportscore.storage.models import Job, Report, ReportReasons, ReportScore

    started = time.perf_counter()
    db = Database(url, sqlite_synchronous="OFF")
    upgrade_to_head(db)
    start_at = datetime(2026, 11, 1, tzinfo=UTC)
    n_jobs = -(-n_reports // REPORTS_PER_JOB)
    step = timedelta(days=DAYS) / n_jobs
    jobs: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    reasons: list[dict[str, Any]] = []
    report_id = 0

    def flush() -> None:
        with db.write() as session:
            if jobs:
                session.execute(insert(Job), jobs)
            if reports:
                session.execute(insert(Report), reports)
                session.execute(insert(ReportScore), scores)
            if reasons:
                session.execute(insert(ReportReasons), reasons)
        jobs.clear()
        reports.clear()
        scores.clear()
        reasons.clear()

    for j in range(n_jobs):
        created_at = start_at + step * j
        job_id = f"{j:08d}-0000-0000-0000-000000000000"
        size = min(REPORTS_PER_JOB, n_reports - j * REPORTS_PER_JOB)
        jobs.append(
            {
                "id": job_id,
                "status": "SUCCESS",
                "owner": "bench",
                "n_reports": size,
                "created_at": created_at,
                "attempts": 1,
                "model_name": "reportscore-reference",
                "model_version": "1.0.0",
            }
        )
        for position in range(size):
            report_id += 1
            reviewed = report_id % 10 == 0
            reports.append(
                {
                    "id": report_id,
                    "job_id": job_id,
                    "owner": "bench",
                    "position": position,
                    "client_report_id": f"r-{report_id}",
                    "abuse_type": "MSG" if report_id % 2 else "PRF",
                    "report_text_len": report_id % 500,
                    "profile_rating": (report_id % 100) / 10,
                    "popularity": report_id % 6,
                    "lifetime_matches_created": report_id % 1000,
                    "review_outcome": "actioned" if reviewed else None,
                    "reviewed_at": created_at + timedelta(hours=1) if reviewed else None,
                }
            )
            scores.append(
                {
                    "report_id": report_id,
                    "owner": "bench",
                    "score": (report_id % 997) / 997,
                    "model_version": "1.0.0",
                    "scored_at": created_at,
                    "reviewed": reviewed,
                }
            )
            if report_id % 20 == 0:
                reasons.append(
                    {
                        "report_id": report_id,
                        "model_name": "reportscore-reference",
                        "model_version": "1.0.0",
                        "reasons": [{"feature": "popularity", "contribution": 0.1}],
                        "computed_at": created_at,
                    }
                )
        if len(reports) >= chunk:
            flush()
    flush()
    db.dispose()
    return time.perf_counter() - started


INCREMENTAL = "bench"
"""The export runs as an incremental one, so that a second run can show it exports nothing more."""


def _read_back(out: str, fmt: str) -> tuple[int, bool]:
    """Rows in the exported files, read with pyarrow, and whether their schema is the export's."""
    import pyarrow.dataset as ds

    from reportscore.export.schema import SCHEMA

    fmt_of = {"parquet": "parquet", "csv": ds.CsvFileFormat(), "jsonl": "json"}[fmt]
    dataset = ds.dataset(out, format=fmt_of, schema=SCHEMA if fmt != "parquet" else None, partitioning="hive")
    table = dataset.to_table(columns=SCHEMA.names)
    return table.num_rows, table.schema.equals(SCHEMA, check_metadata=False)


def _second_run(url: str, out: str, fmt: str) -> int:
    """Rows exported by a second incremental run right after the first (nothing new: 0)."""
    from reportscore.export.service import export_reports
    from reportscore.export.sinks import Target
    from reportscore.storage.db import Database

    db = Database(url)
    try:
        return export_reports(db=db, target=Target(out), fmt=fmt, incremental_name=INCREMENTAL).rows
    finally:
        db.dispose()


def _child(url: str, out: str, fmt: str, page_size: int, answer: Any) -> None:
    """Export in this process; send back the RSS figures."""
    from reportscore.export.service import export_reports
    from reportscore.export.sinks import Target
    from reportscore.storage.db import Database

    db = Database(url)
    with db.read() as session:  # open the connection before the baseline
        session.connection()
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    started = time.perf_counter()
    result = export_reports(
        db=db, target=Target(out), fmt=fmt, page_size=page_size, incremental_name=INCREMENTAL, now=datetime.now(UTC)
    )
    elapsed = time.perf_counter() - started
    answer.send(
        {
            "rows": result.rows,
            "files": len(result.files),
            "export_s": round(elapsed, 1),
            "rss_before_mib": round(before / 1024, 1),
            "peak_rss_mib": round(_rss_kib("VmHWM") / 1024, 1),
            "peak_rss_growth_mib": round((_rss_kib("VmHWM") - before) / 1024, 1),
        }
    )
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--format", default="parquet", choices=("parquet", "csv", "jsonl"))
    parser.add_argument("--page-size", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rs-export-bench-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        fill_s = fill(url, args.reports)
        out = os.path.join(tmp, "out")
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(url, out, args.format, args.page_size, send))
        child.start()
        figures = receive.recv()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"the export failed (exit code {child.exitcode})")
        written = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
        read_rows, schema_ok = _read_back(out, args.format)
        figures.update(
            read_back_rows=read_rows,
            read_back_schema_equal=schema_ok,
            second_incremental_run_rows=_second_run(url, out, args.format),
        )
        figures.update(
            reports=args.reports,
            format=args.format,
            page_size=args.page_size,
            fill_s=round(fill_s, 1),
            rows_per_s=round(figures["rows"] / figures["export_s"]),
            written_mib=round(written / 2**20, 1),
            db_mib=round(Path(f"{tmp}/bench.db").stat().st_size / 2**20, 1),
        )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
