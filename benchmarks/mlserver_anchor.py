"""The MLServer anchor: the same reference XGBoost model served by MLServer (V2 inference protocol, REST), measured
by the same load generator as the other rows, so the service's ratios to it are this project's own measurement.

MLServer runs from a virtualenv of its own (its pins below conflict with the service's), built once with ``uv`` and
cached under ``${XDG_CACHE_HOME:-~/.cache}/reportscore-bench/mlserver-venv-<hash of the pins>``. Its model serves
``predict_proba`` of ``src/reportscore/reference_model/model.ubj``; a report's score is the positive class's column.

    python -m benchmarks.mlserver_anchor    # build the venv if needed, serve, compare 100 scores with XGBoost
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks.loadgen import Body, v2_scores
from benchmarks.services import REPO_ROOT, HttpServer, free_port

PINS: tuple[str, ...] = ("mlserver==1.7.1", "mlserver-xgboost==1.7.1", "uvloop<0.22", "xgboost==3.2.0")
"""What the anchor's virtualenv installs (its cache directory is named after their hash)."""
MODEL_NAME = "reportscore-reference"
OUTPUT = "predict_proba"  # what loadgen.v2_scores reads
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
READY_PATH = "/v2/health/ready"
PARALLEL_WORKERS = 1
"""MLServer's default, one inference worker process. Measured on the service's single core against 0 (inference in
the main process): 1 served ~1.1x the requests/s at B=1 and ~1.6x the reports/s at B=100 (C=8), so the anchor uses
the faster setting."""
INSTALL_TIMEOUT_S = 1800


class AnchorUnavailableError(RuntimeError):
    """The anchor's virtualenv could not be built (no network to the package index, no ``uv`` nor ``venv``)."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reportscore-bench"


def pins_hash() -> str:
    """Names the virtualenv: the pins and the interpreter it is built on."""
    key = "\n".join([*PINS, f"python{sys.version_info.major}.{sys.version_info.minor}"])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def venv_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / f"mlserver-venv-{pins_hash()}"


def _uv() -> str | None:
    bundled = REPO_ROOT / ".tools" / "bin" / "uv"
    return str(bundled) if bundled.exists() else shutil.which("uv")


def ensure_venv(cache_dir: Path | None = None, *, log: Any = print) -> Path:
    """The anchor's virtualenv, built on first use (about 1 GB of downloads without a warm ``uv`` cache).

    A marker file written last tells a complete one from an interrupted build, which is removed and rebuilt; a lock
    file keeps two concurrent builds apart."""
    target = venv_dir(cache_dir)
    marker = target / ".complete"
    if marker.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        log(f"mlserver anchor: building {target} ({', '.join(PINS)})")
        started = time.monotonic()
        uv = _uv()
        python = target / "bin" / "python"
        if uv is not None:
            steps = [
                [uv, "venv", "--quiet", "--python", sys.executable, str(target)],
                [uv, "pip", "install", "--quiet", "--python", str(python), *PINS],
            ]
        else:
            steps = [
                [sys.executable, "-m", "venv", str(target)],
                [str(python), "-m", "pip", "install", "--quiet", *PINS],
            ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=INSTALL_TIMEOUT_S)
            if done.returncode != 0:
                shutil.rmtree(target, ignore_errors=True)
                raise AnchorUnavailableError(f"{' '.join(step[:3])} failed: {(done.stderr or done.stdout)[-2000:]}")
        marker.write_text(json.dumps({"pins": PINS, "python": sys.version.split()[0]}) + "\n")
        log(f"mlserver anchor: built in {time.monotonic() - started:.0f} s")
    return target


def installed_version(venv: Path) -> str:
    """MLServer's version in the anchor's virtualenv."""
    found = sorted(venv.glob("lib/python3*/site-packages/mlserver-*.dist-info"))
    return found[0].name.removeprefix("mlserver-").removesuffix(".dist-info") if found else "?"


def write_repository(directory: Path, *, http_port: int) -> Path:
    """MLServer's ``settings.json`` and the model's ``model-settings.json`` under ``directory``."""
    from reportscore.reference_model import REFERENCE_MODEL_DIR

    model_dir = directory / MODEL_NAME
    model_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": PARALLEL_WORKERS,
        "load_models_at_startup": True,
    }
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": str(REFERENCE_MODEL_DIR / "model.ubj"), "version": "1.0.0"},
    }
    (directory / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2) + "\n")
    return directory


def mlserver_server(out: Path, cpus: set[int] | None, venv: Path) -> HttpServer:
    """``mlserver start`` of a repository in ``out`` serving the reference model, pinned to ``cpus``."""
    port = free_port()
    repository = write_repository(out / "mlserver-repository", http_port=port)
    threads = str(len(cpus)) if cpus else str(os.cpu_count() or 1)
    return HttpServer(
        [str(venv / "bin" / "mlserver"), "start", str(repository)],
        port=port,
        env={"OMP_NUM_THREADS": threads, "PYTHONPATH": ""},
        log_path=out / "mlserver.log",
        cpus=cpus,
        ready_path=READY_PATH,
    )


def infer_body(matrix: Any) -> bytes:
    """A V2 inference request for an encoded float32 matrix (one row a report), asking for ``predict_proba``."""
    rows, cols = matrix.shape
    request = {
        "inputs": [{"name": "input-0", "shape": [rows, cols], "datatype": "FP32", "data": matrix.ravel().tolist()}],
        "outputs": [{"name": OUTPUT}],
    }
    return orjson.dumps(request)


def v2_bodies(reports: Sequence[dict[str, Any]], batch: int, expected: Sequence[float] | None) -> list[Body]:
    """Bodies of ``batch`` reports, encoded by the service's own schema (MLServer gets the features, not the
    reports: the encoding the service does is not counted against MLServer)."""
    from benchmarks.model_floor import load_reference

    schema = load_reference(threads=1, compiled=False).schema
    bodies = []
    for start in range(0, len(reports) - batch + 1, batch):
        matrix = schema.encode_reports(list(reports[start : start + batch]))
        exp = tuple(float(x) for x in expected[start : start + batch]) if expected is not None else None
        bodies.append(Body(infer_body(matrix), batch, exp))
    return bodies


def agreement(url: str, reports: Sequence[dict[str, Any]], expected: Sequence[float]) -> dict[str, Any]:
    """Score ``reports`` through the anchor in one request; the largest difference from XGBoost's own scores."""
    import httpx2 as httpx

    [body] = v2_bodies(reports, len(reports), expected)
    answer = httpx.post(url + INFER_PATH, content=body.payload, timeout=30.0)
    answer.raise_for_status()
    scores = v2_scores(answer.json())
    if scores is None or len(scores) != len(expected):
        raise RuntimeError(f"unexpected MLServer answer: {answer.text[:500]}")
    return {"reports": len(scores), "max_abs_diff": max(abs(s - e) for s, e in zip(scores, expected, strict=True))}


@contextlib.contextmanager
def serving(out: Path, cpus: set[int] | None, cache_dir: Path | None = None) -> Iterator[HttpServer]:
    """The anchor, built if needed, started and ready; stopped afterwards."""
    server = mlserver_server(out, cpus, ensure_venv(cache_dir))
    server.start()
    try:
        server.wait_ready(timeout_s=180.0)
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mlserver_anchor", description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", type=Path, default=None, help="where the venv is cached [~/.cache/reportscore-bench]")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out", help="repository and log")
    args = p.parse_args(argv)
    from benchmarks.model_floor import expected_scores
    from reportscore.scoring.synthetic import sample_reports

    reports = sample_reports(100, seed=3)
    with serving(args.out.resolve(), None, args.cache_dir) as server:
        print(json.dumps(agreement(server.url, reports, expected_scores(reports))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
