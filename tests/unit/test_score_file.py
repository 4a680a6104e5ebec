"""Bulk file scoring: formats, ids, model versions, rejects with the API's reasons, resume, --model, --persist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from reportscore.api.schemas.reports import ReportIn
from reportscore.bulk import service
from reportscore.bulk.files import FileFormatError
from reportscore.bulk.persist import ChunkJobs
from reportscore.bulk.validation import describe, vector_check
from reportscore.jobs.views import get_task
from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.scoring.features import FLOAT32_MAX, REPORT_FIELDS
from reportscore.scoring.formats.base import ModelLoadError
from reportscore.scoring.registration import ensure_champion, register_model
from reportscore.scoring.registry import ServingModel, load_model_dir, load_version
from reportscore.scoring.synthetic import sample_reports
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import jobs as jobs_repo
from reportscore.storage.repositories import moderation as moderation_repo
from tests.model_helpers import tiny_xgboost

FORMATS = ("csv", "parquet", "jsonl")


@pytest.fixture(scope="module")
def model() -> ServingModel:
    return load_model_dir(REFERENCE_MODEL_DIR)


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows (dicts) to path in the format of its suffix; every row has the same keys (CSV, Parquet)."""
    if path.suffix == ".jsonl":
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        pacsv.write_csv(pa.Table.from_pylist(rows), path)
    return path


def _read(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".parquet":
        return list(pq.read_table(path).to_pylist())
    types = {"id": pa.string(), "reason": pa.string(), "model_version": pa.string()}
    return list(pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types)).to_pylist())


def _reports(n: int, seed: int = 5) -> list[dict[str, Any]]:
    return [{"id": f"c-{i:03d}", **r} for i, r in enumerate(sample_reports(n, seed=seed))]


@pytest.mark.parametrize("out_fmt", FORMATS)
@pytest.mark.parametrize("in_fmt", FORMATS)
def test_every_format_round_trips_scores_ids_and_model_version(
    tmp_path: Path, model: ServingModel, in_fmt: str, out_fmt: str
) -> None:
    reports = _reports(23)
    source = _write(tmp_path / f"in.{in_fmt}", reports)
    target = tmp_path / f"out.{out_fmt}"
    summary = service.score_file(source=source, target=target, model=model, id_column="id", chunk_rows=5)

    rows = _read(target)
    assert (summary.rows, summary.scored, summary.rejected, summary.chunks) == (23, 23, 0, 5)
    assert [r["id"] for r in rows] == [r["id"] for r in reports]
    assert [r["row"] for r in rows] == list(range(1, 24))
    assert {r["model_version"] for r in rows} == {model.version}
    expected = model.model.predict(model.schema.encode_reports(reports))
    np.testing.assert_allclose([r["score"] for r in rows], expected, rtol=1e-6)
    assert _read(service.rejects_path_for(target)) == []
    assert not service.staging_dir_for(target).exists()


# Values per field that the API accepts or refuses, as a JSON body would carry them.
EDGE_VALUES: dict[str, list[Any]] = {
    "abuse_type": ["MSG", "PRF", "msg", "", "MSG ", None, 3],
    "report_text_len": [0, 2**31 - 1, 2**31, -1, 5.0, 5.5, "5", True, None, 1e400, 2**63 + 5],
    "profile_rating": [0, -3.5, FLOAT32_MAX, FLOAT32_MAX * 2, float("nan"), float("inf"), "1.0", False, None],
    "popularity": [0, 5, 6, -1, 3.0, 3.1, None, "3"],
    "lifetime_matches_created": [0, 7, -0.0, 1e3, 1e10, None],
    "report_id": ["x", "", "a" * 128, "a" * 129, "nul\x00", 42, None],
}


def _edge_rows() -> list[dict[str, Any]]:
    base = {"abuse_type": "MSG", "report_text_len": 3, "profile_rating": 1.5, "popularity": 2}
    base["lifetime_matches_created"] = 4
    rows = []
    for name, values in EDGE_VALUES.items():
        for value in values:
            row = dict(base)
            if value is None:
                row.pop(name, None)
            else:
                row[name] = value
            rows.append(row)
    return rows


def _api_verdict(row: dict[str, Any]) -> str | None:
    try:
        ReportIn.model_validate(row)
    except ValidationError as exc:
        return describe(exc)
    return None


def test_json_lines_rows_are_checked_by_the_api_rules_and_rejected_with_its_messages(
    tmp_path: Path, model: ServingModel
) -> None:
    rows = _edge_rows()
    lines = [json.dumps(r).encode() for r in rows]  # json (not orjson): NaN and Infinity as their literals
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    summary = service.score_file(source=source, target=tmp_path / "out.jsonl", model=model, chunk_rows=8)

    # NaN and Infinity are no JSON: such a line is rejected as a whole, as the API refuses such a body
    expected = {
        i + 1: _api_verdict(json.loads(line)) if _strict_json(line) else "not valid JSON"
        for i, line in enumerate(lines)
    }
    rejects = {r["row"]: r["reason"] for r in _read(tmp_path / "out.rejects.jsonl")}
    assert {row: reason[: len(expected[row] or "")] for row, reason in rejects.items()} == {
        row: reason for row, reason in expected.items() if reason is not None
    }
    assert sum(reason == "not valid JSON" for reason in expected.values()) == 3
    assert summary.scored == sum(1 for v in expected.values() if v is None) > 0
    assert "report_text_len: Input should be less than or equal to 2147483647" in rejects.values()


def _strict_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def test_the_vectorized_rules_agree_with_the_api_model_on_every_edge_value() -> None:
    rows = [r for r in _edge_rows() if _representable(r)]  # those a typed (Parquet) column can hold
    typed = {
        name: pa.array(
            [r.get(name) for r in rows], pa.string() if name in ("abuse_type", "report_id") else pa.float64()
        )
        for name in (*REPORT_FIELDS, "report_id")
    }
    ok, _ = vector_check(typed, len(rows), text_cells=False)
    assert len(rows) > 30
    assert [bool(x) for x in ok] == [_api_verdict(row) is None for row in rows]


def _representable(row: dict[str, Any]) -> bool:
    for name, value in row.items():
        if name in ("abuse_type", "report_id"):
            if not isinstance(value, str):
                return False
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > 2**53:
            return False
    return True


def test_csv_cells_follow_the_api_rules_and_malformed_rows_are_rejected_in_place(
    tmp_path: Path, model: ServingModel
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "ref,abuse_type,report_text_len,profile_rating,popularity,lifetime_matches_created,report_id\n"
        "a,MSG,120,0.45,3,12,\n"  # valid: an empty optional cell is absent
        "b,PRF,5.0,1e1,5,0,id-b\n"  # valid: 5.0 is the JSON number 5
        "c,MSG,5.5,1,1,1,\n"
        "d,MSG,1,1\n"  # wrong number of cells
        "e,PRF,+3,1,1,1,\n"  # not a JSON number
        "f,BAD,1,NaN,9,,\n"
        "g,MSG,1,1,1,1,\n"
    )
    summary = service.score_file(source=source, target=tmp_path / "out.csv", model=model, id_column="ref")

    assert (summary.rows, summary.scored, summary.rejected) == (7, 3, 4)
    assert [r["ref"] for r in _read(tmp_path / "out.csv")] == ["a", "b", "g"]
    rejects = _read(tmp_path / "out.rejects.csv")
    assert [(r["row"], r["ref"]) for r in rejects] == [(3, "c"), (4, ""), (5, "e"), (6, "f")]  # no id: empty
    assert rejects[0]["reason"] == "report_text_len: Input should be a valid integer"
    assert rejects[1]["reason"] == "malformed CSV row: 4 cells, expected 7"
    assert rejects[2]["reason"] == "report_text_len: Input should be a valid integer"
    assert rejects[3]["reason"] == (
        "abuse_type: Input should be 'MSG' or 'PRF'; profile_rating: Input should be a valid number; "
        "popularity: Input should be less than or equal to 5; lifetime_matches_created: Field required"
    )


def test_bad_json_lines_never_stop_the_run(tmp_path: Path, model: ServingModel) -> None:
    good = json.dumps(sample_reports(1, seed=1)[0])
    source = tmp_path / "in.jsonl"
    source.write_text(
        f'{good}\n{{not json\n[1, 2]\n\n{good[:-1]}, "extra": 1}}\n{good}\n'
        '{"abuse_type": "MSG", "report_text_len": "3", "profile_rating": 1, "popularity": 1, '
        '"lifetime_matches_created": 1}\n'
    )
    summary = service.score_file(source=source, target=tmp_path / "out.parquet", model=model, chunk_rows=3)

    assert [r["row"] for r in _read(tmp_path / "out.parquet")] == [1, 6]
    rejects = _read(tmp_path / "out.rejects.parquet")
    assert [r["row"] for r in rejects] == [2, 3, 5, 7]
    assert rejects[0]["reason"].startswith("not valid JSON")
    assert rejects[1]["reason"] == "Input should be a valid dictionary or instance of ReportIn"
    assert rejects[2]["reason"] == "extra: Extra inputs are not permitted"
    assert rejects[3]["reason"] == "report_text_len: Input should be a valid integer"
    assert (summary.scored, summary.rejected) == (2, 4)


def test_a_file_whose_columns_cannot_be_reports_is_refused_before_anything_is_written(
    tmp_path: Path, model: ServingModel
) -> None:
    target = tmp_path / "out.csv"
    extra = _write(tmp_path / "extra.csv", [{"ref": 1, "colour": "red", **sample_reports(1, seed=2)[0]}])
    with pytest.raises(FileFormatError, match=r"unknown column\(s\) colour"):
        service.score_file(source=extra, target=target, model=model, id_column="ref")
    missing = _write(tmp_path / "missing.parquet", [{"abuse_type": "MSG"}])
    with pytest.raises(FileFormatError, match=r"missing column\(s\) report_text_len"):
        service.score_file(source=missing, target=target, model=model)
    with pytest.raises(FileFormatError, match=r"unknown file format '\.xlsx'"):
        service.score_file(source=extra, target=tmp_path / "out.xlsx", model=model)
    with pytest.raises(FileNotFoundError):
        service.score_file(source=tmp_path / "absent.csv", target=target, model=model)
    with pytest.raises(FileFormatError, match="three different files"):
        service.score_file(source=extra, target=target, rejects=target, model=model, id_column="ref")
    assert set(tmp_path.iterdir()) == {extra, missing}


def test_a_stopped_run_resumes_after_its_last_complete_chunk_without_duplicates(
    tmp_path: Path, model: ServingModel
) -> None:
    reports = _reports(50)
    reports[17]["popularity"] = 8
    source = _write(tmp_path / "in.parquet", reports)
    full = tmp_path / "full.csv"
    service.score_file(source=source, target=full, model=model, id_column="id", chunk_rows=6)

    target = tmp_path / "out.csv"
    stopped = service.score_file(
        source=source, target=target, model=model, id_column="id", chunk_rows=6, stop_after_chunks=3
    )
    assert (stopped.stopped, stopped.chunks, target.exists()) == (True, 3, False)

    calls = {"n": 0}
    failing = _FailingModel(model, fail_on_call=2, calls=calls)  # dies in the middle of the 2nd chunk it scores
    with pytest.raises(RuntimeError, match="killed"):
        service.score_file(
            source=source, target=target, model=cast(ServingModel, failing), id_column="id", chunk_rows=6, resume=True
        )
    assert not target.exists()

    done = service.score_file(source=source, target=target, model=model, id_column="id", chunk_rows=6, resume=True)
    assert (done.resumed_chunks, done.stopped) == (4, False)
    assert (done.rows, done.scored, done.rejected) == (50, 49, 1)
    assert target.read_bytes() == full.read_bytes()
    assert (tmp_path / "out.rejects.csv").read_bytes() == (tmp_path / "full.rejects.csv").read_bytes()
    assert not service.staging_dir_for(target).exists()


class _FailingModel:
    """A model stand-in that scores like ``model`` but raises on its ``fail_on_call``-th call."""

    def __init__(self, model: ServingModel, *, fail_on_call: int, calls: dict[str, int]) -> None:
        self._model = model
        self._calls = calls
        self._fail_on = fail_on_call
        self.name, self.version, self.sha256 = model.name, model.version, model.sha256

    def score(self, columns: dict[str, Any]) -> Any:
        self._calls["n"] += 1
        if self._calls["n"] == self._fail_on:
            raise RuntimeError("killed")
        return self._model.score(columns)


def test_resume_refuses_a_stopped_run_of_another_input(tmp_path: Path, model: ServingModel) -> None:
    source = _write(tmp_path / "in.csv", _reports(20))
    target = tmp_path / "out.jsonl"
    service.score_file(source=source, target=target, model=model, id_column="id", chunk_rows=5, stop_after_chunks=1)
    _write(source, _reports(20, seed=6))
    with pytest.raises(service.ResumeError, match="differs from this one"):
        service.score_file(source=source, target=target, model=model, id_column="id", chunk_rows=5, resume=True)
    fresh = service.score_file(
        source=source, target=target, model=model, id_column="id", chunk_rows=5
    )  # without --resume: anew
    assert (fresh.resumed_chunks, fresh.scored) == (0, 20)


def test_model_option_scores_with_a_registered_version(tmp_path: Path, db: Database, settings: Settings) -> None:
    ensure_champion(db=db, settings=settings)
    tiny_xgboost(tmp_path / "v2.ubj")
    register_model(db=db, settings=settings, artifact=tmp_path / "v2.ubj", version="2.0.0")
    champion = load_version(db=db, settings=settings)
    v2 = load_version(db=db, settings=settings, version="2.0.0")
    source = _write(tmp_path / "in.parquet", _reports(12))

    service.score_file(source=source, target=tmp_path / "champ.parquet", model=champion, id_column="id")
    service.score_file(source=source, target=tmp_path / "v2.parquet", model=v2, id_column="id")
    champ_rows, v2_rows = _read(tmp_path / "champ.parquet"), _read(tmp_path / "v2.parquet")
    assert {r["model_version"] for r in champ_rows} == {champion.version} != {"2.0.0"}
    assert {r["model_version"] for r in v2_rows} == {"2.0.0"}
    assert [r["score"] for r in champ_rows] != [r["score"] for r in v2_rows]
    with pytest.raises(ModelLoadError, match=r"9\.9\.9 is not registered"):
        load_version(db=db, settings=settings, version="9.9.9")


def test_persist_stores_each_chunk_as_a_finished_job_once(
    tmp_path: Path, db: Database, settings: Settings, model: ServingModel
) -> None:
    reports = _reports(11)
    reports[4]["abuse_type"] = "NOPE"
    source = _write(tmp_path / "in.jsonl", reports)
    stores: list[ChunkJobs] = []

    def jobs(run_key: str) -> ChunkJobs:
        stores.append(
            ChunkJobs(db=db, owner="tenant-a", model_name=model.name, model_version=model.version, run_key=run_key)
        )
        return stores[-1]

    target = tmp_path / "out.csv"
    first = service.score_file(source=source, target=target, model=model, id_column="id", chunk_rows=4, jobs=jobs)
    assert first.jobs_created == 3
    job_ids = [_job_id(stores[0], i) for i in range(3)]
    tasks = [get_task(db=db, task_id=job_id, owner="tenant-a") for job_id in job_ids]
    assert all(t is not None and t.status == "SUCCESS" for t in tasks)
    assert all(t is not None and t.model_version == model.version for t in tasks)
    stored = [r for t in tasks if t is not None for r in (t.reports or [])]
    np.testing.assert_allclose(
        np.asarray([r.score for r in stored], dtype=np.float64), [r["score"] for r in _read(target)], rtol=1e-6
    )
    assert [r.client_report_id for r in stored] == [r["id"] for r in reports if r["abuse_type"] != "NOPE"]

    with db.read() as session:  # the moderation queue sees them, highest score first
        queue = moderation_repo.queue_page(session, owner="tenant-a", limit=100)
    assert sorted(r.score for r in queue) == sorted(r.score or 0.0 for r in stored)

    again = service.score_file(source=source, target=target, model=model, id_column="id", chunk_rows=4, jobs=jobs)
    assert again.jobs_created == 0
    with db.read() as session:
        assert sum(len(jobs_repo.get_job_reports(session, job_id)) for job_id in job_ids) == 10


def _job_id(store: ChunkJobs, index: int) -> str:
    from reportscore.bulk.persist import chunk_job_id

    return chunk_job_id(store.run_key, index)


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_id_as_the_id_column_is_still_checked_by_the_api_rules(
    tmp_path: Path, model: ServingModel, fmt: str
) -> None:
    reports = [{"report_id": f"rep-{i}", **r} for i, r in enumerate(sample_reports(4, seed=8))]
    reports[2]["report_id"] = "x" * 129
    source = _write(tmp_path / f"in.{fmt}", reports)
    target = tmp_path / f"out.{fmt}"
    service.score_file(source=source, target=target, model=model, id_column="report_id")

    assert [r["report_id"] for r in _read(target)] == ["rep-0", "rep-1", "rep-3"]
    rejects = _read(service.rejects_path_for(target))
    reason = _api_verdict(reports[2])
    assert reason is not None
    assert reason.startswith("report_id: ")
    assert [(r["row"], r["reason"]) for r in rejects] == [(3, reason)]


def test_a_byte_order_mark_and_nested_json_values_are_handled(tmp_path: Path, model: ServingModel) -> None:
    header = "abuse_type,report_text_len,profile_rating,popularity,lifetime_matches_created\n"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (header + "MSG,1,1,1,1\n").encode())
    assert service.score_file(source=bom, target=tmp_path / "bom.out.csv", model=model).scored == 1

    nested = tmp_path / "nested.jsonl"
    good = {"abuse_type": "MSG", "report_text_len": 1, "profile_rating": 1, "popularity": 1}
    good["lifetime_matches_created"] = 1
    nested.write_bytes(
        orjson.dumps({**good, "report_text_len": [1], "popularity": {"a": 1}}) + b"\n" + orjson.dumps(good)
    )
    summary = service.score_file(source=nested, target=tmp_path / "nested.out.csv", model=model)
    assert (summary.scored, summary.rejected) == (1, 1)
    assert _read(tmp_path / "nested.out.rejects.csv")[0]["reason"] == (
        "report_text_len: Input should be a valid integer; popularity: Input should be a valid integer"
    )
