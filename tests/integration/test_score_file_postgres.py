"""``score-file --persist`` on PostgreSQL: each chunk a finished job with its reports, stored once across runs."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from reportscore.bulk import service
from reportscore.bulk.persist import ChunkJobs, chunk_job_id
from reportscore.jobs.views import get_task
from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring.registry import load_model_dir
from reportscore.scoring.synthetic import sample_reports
from reportscore.storage.db import Database

pytestmark = pytest.mark.integration


def test_persisted_chunks_are_jobs_with_their_reports_and_a_second_run_adds_none(
    pg_db: Database, tmp_path: Path
) -> None:
    model = load_model_dir(REFERENCE_MODEL_DIR)
    reports = [{"ref": f"r{i}", **r} for i, r in enumerate(sample_reports(9, seed=12))]
    reports[3]["popularity"] = 7
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in reports))
    keys: list[str] = []

    def jobs(run_key: str) -> ChunkJobs:
        keys.append(run_key)
        return ChunkJobs(db=pg_db, owner="t", model_name=model.name, model_version=model.version, run_key=run_key)

    for expected_created in (3, 0):
        summary = service.score_file(
            source=source, target=tmp_path / "out.csv", model=model, id_column="ref", chunk_rows=3, jobs=jobs
        )
        assert (summary.scored, summary.rejected, summary.jobs_created) == (8, 1, expected_created)
    tasks = [get_task(db=pg_db, task_id=chunk_job_id(keys[0], i), owner="t") for i in range(3)]
    stored = [r for t in tasks if t is not None for r in (t.reports or [])]
    assert [t.status if t else None for t in tasks] == ["SUCCESS"] * 3
    assert [r.client_report_id for r in stored] == [f"r{i}" for i in range(9) if i != 3]
    assert all(r.score is not None and 0 <= r.score <= 1 for r in stored)
