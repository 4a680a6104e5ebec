"""``reportscore score-file`` as a real process: exit codes, output files, resume, --persist, --model, errors."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from reportscore.scoring.synthetic import generate_reports, sample_reports
from tests.servers import REPORTSCORE, clean_env, run_cli


def _env(tmp_path: Path) -> dict[str, str]:
    return {"REPORTSCORE_DATA_DIR": str(tmp_path / "data")}


def _input(tmp_path: Path) -> Path:
    lines = [json.dumps({"ref": f"r{i}", **r}) for i, r in enumerate(sample_reports(30, seed=4))]
    lines[7] = lines[7].replace('"abuse_type": "', '"abuse_type": "X')
    lines[21] = "{oops"
    source = tmp_path / "reports.jsonl"
    source.write_text("\n".join(lines) + "\n")
    return source


def test_help_names_every_option() -> None:
    result = run_cli(["score-file", "--help"], {})
    assert result.returncode == 0, result.stderr
    for option in ("--output", "--rejects", "--id-column", "--model", "--chunk-rows", "--resume", "--persist"):
        assert option in result.stdout
    assert "--stop-after-chunks" not in result.stdout


def test_scores_a_file_persists_it_once_and_resumes_a_stopped_run(tmp_path: Path) -> None:
    env, source = _env(tmp_path), _input(tmp_path)
    out = tmp_path / "scores.csv"
    args = [str(source), "--id-column", "ref", "--chunk-rows", "10"]
    done = run_cli(["score-file", *args, "-o", str(out), "--persist"], env)
    assert done.returncode == 0, done.stderr
    assert "30 rows: 28 scored" in done.stderr
    assert "2 rejected" in done.stderr
    assert "3 jobs stored" in done.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == '"ref","row","score","model_version"'
    assert len(lines) == 29
    rejects = (tmp_path / "scores.rejects.csv").read_text().splitlines()
    assert rejects[1].startswith('8,"r7","abuse_type: Input should be')
    assert rejects[2].startswith('22,,"not valid JSON')

    again = run_cli(["score-file", *args, "-o", str(tmp_path / "again.csv"), "--persist"], env)
    assert again.returncode == 0, again.stderr
    assert "0 jobs stored" in again.stderr  # the same chunks, the same job ids: nothing stored twice

    resumed_out = tmp_path / "resumed.csv"
    stopped = run_cli(["score-file", *args, "-o", str(resumed_out), "--stop-after-chunks", "1"], env)
    assert stopped.returncode == 0, stopped.stderr
    assert "--resume" in stopped.stderr
    assert not resumed_out.exists()
    resumed = run_cli(["score-file", *args, "-o", str(resumed_out), "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 chunks kept from the stopped run" in resumed.stderr
    assert resumed_out.read_bytes() == out.read_bytes()


def test_clear_errors_for_bad_invocations(tmp_path: Path) -> None:
    env, source = _env(tmp_path), _input(tmp_path)
    missing = run_cli(["score-file", str(tmp_path / "absent.csv"), "-o", str(tmp_path / "o.csv")], env)
    assert missing.returncode == 2
    assert "absent.csv: no such file" in missing.stderr

    unknown = run_cli(["score-file", str(source), "-o", str(tmp_path / "o.xlsx")], env)
    assert unknown.returncode == 2
    assert "unknown file format '.xlsx'" in unknown.stderr

    no_id = run_cli(["score-file", str(source), "-o", str(tmp_path / "o.csv"), "--model", "9.9.9"], env)
    assert no_id.returncode == 2
    assert "9.9.9 is not registered" in no_id.stderr
    assert not (tmp_path / "o.csv").exists()


def test_a_killed_run_resumes_to_the_same_output(tmp_path: Path) -> None:
    env = _env(tmp_path)
    source = tmp_path / "many.parquet"
    pq.write_table(pa.table(generate_reports(200_000, seed=3)), source)
    args = [str(source), "--chunk-rows", "1000"]
    full = run_cli(["score-file", *args, "-o", str(tmp_path / "full.parquet")], env)
    assert full.returncode == 0, full.stderr

    target = tmp_path / "killed.parquet"
    manifest = tmp_path / ".killed.parquet.parts" / "manifest.json"
    child = subprocess.Popen(
        [REPORTSCORE, "score-file", *args, "-o", str(target)],
        env=clean_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while child.poll() is None:  # kill -9 as soon as some chunks are complete
            if manifest.is_file() and json.loads(manifest.read_text() or "{}").get("chunks_done", 0) >= 3:
                child.send_signal(signal.SIGKILL)
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.01)  # look again in 10 ms, or stop looking when it ended
    finally:
        child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not target.exists()

    resumed = run_cli(["score-file", *args, "-o", str(target), "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "chunks kept from the stopped run" in resumed.stderr
    assert pq.read_table(target).equals(pq.read_table(tmp_path / "full.parquet"))
