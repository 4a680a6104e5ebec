"""``reportscore export``: typed columns, day partitions, the three formats read back with pyarrow, incremental runs
exactly once (also after a run that died), an S3 target on a real S3-compatible server; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest
from pyarrow import fs

from reportscore.export import sinks
from reportscore.export.schema import SCHEMA
from reportscore.export.service import export_reports
from reportscore.export.sinks import Target
from reportscore.settings import Settings
from reportscore.storage import migrate
from reportscore.storage.db import Database
from reportscore.storage.models import Job, JobStatus, Report, ReportReasons, ReportScore
from reportscore.storage.repositories.exports import RunSupersededError, read_watermark
from tests.infra.s3server import CREDENTIALS, REGION, S3Server
from tests.servers import run_cli

DAY1 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
DAY2 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
pytestmark = [pytest.mark.integration]

REASONS = [{"feature": "popularity", "contribution": 0.42}]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database of each kind, holding only what the test puts in it."""
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path / "data")
    else:
        settings = Settings(data_dir=tmp_path / "data", database_url=request.getfixturevalue("pg_url"))
    database = Database.from_settings(settings)
    migrate.upgrade_to_head(database)
    yield database
    database.dispose()


def add_job(
    db: Database,
    created_at: datetime,
    n: int,
    *,
    status: JobStatus = JobStatus.SUCCESS,
    reviewed: bool = False,
    reasons: bool = False,
) -> list[dict[str, Any]]:
    """A job of ``n`` reports (scored unless still pending); returns the rows the export should hold."""
    job_id = f"job-{created_at:%Y%m%d%H%M%S%f}-{n}"
    scored = status == JobStatus.SUCCESS
    expected = []
    with db.write() as session:
        session.add(
            Job(
                id=job_id,
                status=status,
                owner="acme",
                n_reports=n,
                created_at=created_at,
                model_name="reportscore-reference" if scored else None,
                model_version="1.0.0" if scored else None,
            )
        )
        session.flush()
        for position in range(n):
            report = Report(
                job_id=job_id,
                owner="acme",
                position=position,
                client_report_id=f"c-{position}",
                abuse_type="MSG" if position % 2 else "PRF",
                report_text_len=10 * position,
                profile_rating=0.5 + position,
                popularity=position % 6,
                lifetime_matches_created=position * 3,
                review_outcome="actioned" if reviewed else None,
                reviewed_at=created_at + timedelta(hours=1) if reviewed else None,
            )
            session.add(report)
            session.flush()
            score = ReportScore(
                report_id=report.id,
                owner="acme",
                score=0.25 * (position % 4),
                model_version="1.0.0",
                scored_at=created_at + timedelta(seconds=1),
                reviewed=reviewed,
            )
            if scored:
                session.add(score)
            if reasons:
                session.add(
                    ReportReasons(
                        report_id=report.id,
                        model_name="reportscore-reference",
                        model_version="1.0.0",
                        reasons=REASONS,
                        computed_at=created_at,
                    )
                )
            expected.append(
                {
                    "report_id": report.id,
                    "job_id": job_id,
                    "owner": "acme",
                    "created_at": created_at,
                    "position": position,
                    "client_report_id": f"c-{position}",
                    "abuse_type": report.abuse_type,
                    "report_text_len": report.report_text_len,
                    "profile_rating": report.profile_rating,
                    "popularity": report.popularity,
                    "lifetime_matches_created": report.lifetime_matches_created,
                    "job_status": status.value,
                    "model_name": "reportscore-reference" if scored else None,
                    "model_version": score.model_version if scored else None,
                    "score": score.score if scored else None,
                    "scored_at": score.scored_at if scored else None,
                    "review_outcome": report.review_outcome,
                    "reviewed_at": report.reviewed_at,
                    "reasons": REASONS if reasons else None,
                }
            )
    return expected


def read_part(path: Path, fmt: str) -> pa.Table:
    if fmt == "parquet":
        return pq.read_table(path)
    if fmt == "csv":
        convert = pa_csv.ConvertOptions(
            column_types={f.name: f.type for f in SCHEMA}, strings_can_be_null=True, include_columns=SCHEMA.names
        )
        return pa_csv.read_csv(path, convert_options=convert)
    return pa_json.read_json(path, parse_options=pa_json.ParseOptions(explicit_schema=SCHEMA))


def exported_rows(root: Path, fmt: str) -> dict[str, list[dict[str, Any]]]:
    """Every exported row by partition directory, with ``reasons`` parsed; the column types are checked on the way."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(root.rglob(f"part-*.{fmt}")):
        table = read_part(path, fmt)
        assert [(f.name, f.type) for f in table.schema] == [(f.name, f.type) for f in SCHEMA]
        rows = table.to_pylist()
        for row in rows:
            row["reasons"] = json.loads(row["reasons"]) if row["reasons"] is not None else None
        by_day.setdefault(path.parent.name, []).extend(rows)
    return by_day


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_a_range_is_exported_by_day_with_typed_columns_in_every_format(
    store: Database, tmp_path: Path, fmt: str
) -> None:
    add_job(store, DAY1 - timedelta(days=3), 2)  # before the range
    day1 = add_job(store, DAY1, 3, reviewed=True, reasons=True)
    day2 = add_job(store, DAY2, 2, status=JobStatus.PENDING) + add_job(store, DAY2 + timedelta(minutes=1), 4)
    add_job(store, NOW, 1)  # at its exclusive end

    result = export_reports(
        db=store, target=Target(str(tmp_path / "out")), fmt=fmt, since=DAY1 - timedelta(hours=1), until=NOW,
        page_size=4,
    )  # fmt: skip

    assert result.rows == 9
    assert sorted(result.files) == [
        f"date=2026-11-30/part-{result.run_id}.{fmt}",
        f"date=2026-12-01/part-{result.run_id}.{fmt}",
    ]
    assert exported_rows(tmp_path / "out", fmt) == {"date=2026-11-30": day1, "date=2026-12-01": day2}
    assert not list((tmp_path / "out").rglob("*.inprogress"))
    if fmt == "parquet":  # the tree reads as one hive-partitioned dataset
        table = pq.read_table(tmp_path / "out", partitioning="hive")
        assert table.num_rows == 9


def test_incremental_runs_export_each_report_exactly_once(store: Database, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = add_job(store, DAY1, 3)
    in_flight = add_job(store, DAY2, 2, status=JobStatus.STARTED)
    later = add_job(store, DAY2 + timedelta(minutes=5), 2)

    run1 = export_reports(db=store, target=Target(str(out)), fmt="parquet", incremental_name="nightly", now=NOW)
    # The job still being scored holds back everything created after it: its scores would be exported too early.
    assert run1.rows == 3
    assert exported_rows(out, "parquet") == {"date=2026-11-30": first}

    with store.write() as session:
        job = session.get(Job, in_flight[0]["job_id"])
        assert job is not None
        job.status = JobStatus.SUCCESS
    newer = add_job(store, NOW + timedelta(minutes=10), 2)
    too_recent = add_job(store, NOW + timedelta(minutes=59, seconds=30), 1)
    run2 = export_reports(
        db=store, target=Target(str(out)), fmt="parquet", incremental_name="nightly", now=NOW + timedelta(hours=1)
    )
    assert run2.rows == 6
    assert run2.run_id != run1.run_id
    for row in in_flight:
        row["job_status"] = "SUCCESS"
    assert exported_rows(out, "parquet") == {
        "date=2026-11-30": first,
        "date=2026-12-01": in_flight + later,
        "date=2026-12-02": newer,
    }
    with store.read() as session:
        watermark = read_watermark(session, "nightly")
    assert watermark is not None
    assert watermark.pending_run_id is None
    assert watermark.last is not None
    assert watermark.last.report_id == newer[-1]["report_id"]

    run3 = export_reports(
        db=store, target=Target(str(out)), fmt="parquet", incremental_name="nightly", now=NOW + timedelta(hours=2)
    )
    assert (run3.rows, run3.files) == (1, [f"date=2026-12-02/part-{run3.run_id}.parquet"])
    assert exported_rows(out, "parquet")["date=2026-12-02"] == newer + too_recent
    run4 = export_reports(
        db=store, target=Target(str(out)), fmt="parquet", incremental_name="nightly", now=NOW + timedelta(hours=3)
    )
    assert (run4.rows, run4.files) == (0, [])
    assert len(list(out.rglob("part-*.parquet"))) == 4


def test_a_run_that_dies_is_written_again_under_the_same_names(
    store: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    day1, day2 = add_job(store, DAY1, 3), add_job(store, DAY2, 2)
    real_commit = sinks.PartFile.commit

    def dies_on_the_second_day(self: sinks.PartFile) -> None:
        if "2026-12-01" in self.relative:
            raise OSError("disk full")
        real_commit(self)

    monkeypatch.setattr(sinks.PartFile, "commit", dies_on_the_second_day)
    with pytest.raises(OSError, match="disk full"):
        export_reports(db=store, target=Target(str(out)), fmt="jsonl", incremental_name="nightly", now=NOW)
    with store.read() as session:
        pending = read_watermark(session, "nightly")
    assert pending is not None
    assert pending.pending_run_id is not None
    assert pending.last is None
    assert exported_rows(out, "jsonl") == {"date=2026-11-30": day1}  # the published first day stays
    assert not list(out.rglob("*.inprogress"))

    monkeypatch.setattr(sinks.PartFile, "commit", real_commit)
    add_job(store, NOW + timedelta(minutes=10), 1)  # after the dead run's range: waits for the next run
    again = export_reports(
        db=store, target=Target(str(out)), fmt="jsonl", incremental_name="nightly", now=NOW + timedelta(hours=1)
    )
    assert again.resumed
    assert again.run_id == pending.pending_run_id
    assert again.rows == 5
    assert exported_rows(out, "jsonl") == {"date=2026-11-30": day1, "date=2026-12-01": day2}
    assert len(list(out.rglob("part-*.jsonl"))) == 2

    following = export_reports(
        db=store, target=Target(str(out)), fmt="jsonl", incremental_name="nightly", now=NOW + timedelta(hours=2)
    )
    assert (following.rows, following.resumed) == (1, False)


def test_two_runs_at_once_write_the_range_once(
    store: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    day1 = add_job(store, DAY1, 3)
    real_commit = sinks.PartFile.commit
    second: list[Any] = []
    started = False

    def another_run_starts_meanwhile(self: sinks.PartFile) -> None:
        nonlocal started
        if not started:
            started = True
            later = NOW + timedelta(minutes=5)
            second.append(
                export_reports(db=store, target=Target(str(out)), fmt="csv", incremental_name="nightly", now=later)
            )
        real_commit(self)

    monkeypatch.setattr(sinks.PartFile, "commit", another_run_starts_meanwhile)
    with pytest.raises(RunSupersededError, match="another run of the same export"):
        export_reports(db=store, target=Target(str(out)), fmt="csv", incremental_name="nightly", now=NOW)

    assert second[0].resumed
    assert second[0].rows == 3
    assert exported_rows(out, "csv") == {"date=2026-11-30": day1}
    assert len(list(out.rglob("part-*.csv"))) == 1
    assert not list(out.rglob("*.inprogress"))


def test_an_s3_target_on_a_real_s3_server(
    s3_server: S3Server, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket()
    day1, day2 = add_job(db, DAY1, 3, reasons=True), add_job(db, DAY2, 2)
    target = Target(f"s3://{bucket}/exports/reports", endpoint_url=s3_server.endpoint_url, region=REGION)

    result = export_reports(db=db, target=target, fmt="parquet", incremental_name="s3", now=NOW)

    assert result.rows == 5
    # Only the published files (and the empty directory markers pyarrow keeps): no in-progress object is left.
    files = [key for key in s3_server.keys(bucket) if not key.endswith("/")]
    assert files == [f"exports/reports/{name}" for name in sorted(result.files)]
    s3 = fs.S3FileSystem(region=REGION, endpoint_override=s3_server.endpoint_url.removeprefix("http://"), scheme="http")
    table = pq.read_table(f"{bucket}/exports/reports", filesystem=s3, partitioning="hive")
    assert sorted(table.column("report_id").to_pylist()) == sorted(r["report_id"] for r in day1 + day2)
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")

    # The command, on the same export: only the new report goes to the bucket.
    newer = add_job(db, datetime.now(UTC) - timedelta(minutes=5), 1)
    url = f"s3://{bucket}/exports/reports"
    options = ["--name", "s3", "--endpoint-url", s3_server.endpoint_url, "--region", REGION, "--no-progress"]
    env = {"REPORTSCORE_DATA_DIR": str(tmp_path / "data"), **CREDENTIALS}
    done = run_cli(["export", "--out", url, "--incremental", *options], env)
    assert done.returncode == 0, done.stderr
    assert "exported 1 reports into 1 file(s)" in done.stderr
    table = pq.read_table(f"{bucket}/exports/reports", filesystem=s3, partitioning="hive")
    assert sorted(table.column("report_id").to_pylist()) == sorted(r["report_id"] for r in day1 + day2 + newer)


def test_the_command_exports_and_explains_bad_input(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    database = Database.from_settings(settings)
    migrate.upgrade_to_head(database)
    expected = add_job(database, DAY1, 2)
    database.dispose()
    env = {"REPORTSCORE_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "out"

    done = run_cli(["export", "--out", str(out), "--format", "csv", "--incremental", "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    assert "exported 2 reports into 1 file(s)" in done.stderr
    assert done.stdout.strip().startswith("date=2026-11-30/part-")
    assert exported_rows(out, "csv") == {"date=2026-11-30": expected}
    again = run_cli(["export", "--out", str(out), "--format", "csv", "--incremental", "--no-progress"], env)
    assert again.returncode == 0
    assert "exported 0 reports" in again.stderr

    bad_format = run_cli(["export", "--out", str(out), "--format", "xlsx"], env)
    assert bad_format.returncode == 2
    assert "expected one of parquet, csv, jsonl" in bad_format.stderr
    bad_date = run_cli(["export", "--out", str(out), "--since", "yesterday"], env)
    assert bad_date.returncode == 2
    assert "expected an ISO 8601 date" in bad_date.stderr
    bad_target = run_cli(["export", "--out", "ftp://host/x"], env)
    assert bad_target.returncode == 2
    assert "expected a local path or s3://bucket/prefix" in bad_target.stderr
