"""The multiprocess-metrics directory of a command: chosen, emptied, swept and removed as documented. Each case runs
in a fresh interpreter, because ``enable`` must run before ``prometheus_client`` is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reportscore.monitoring import multiproc
from tests.servers import REPO_ROOT, clean_env

SCRIPT = """
import os, sys
from pathlib import Path
from reportscore.monitoring import multiproc
configured = Path(sys.argv[1]) if sys.argv[1] != "-" else None
d = multiproc.enable(configured)
from reportscore.monitoring import metrics
assert multiproc.multiprocess_dir() == d.path
metrics.set_workers_up("celery", 1)
print(d.path, d.owned, sorted(p.name for p in d.path.iterdir()), flush=True)
if os.fork() == 0:  # a forked child that closes the inherited object must not remove the parent's directory
    d.close()
    os._exit(0)
os.wait()
assert d.path.is_dir()
d.close()
print(d.path.exists(), "PROMETHEUS_MULTIPROC_DIR" in os.environ)
"""


def run(configured: str, tmp_path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, configured],
        env=clean_env({"TMPDIR": str(tmp_path)}),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_private_directory_is_created_and_removed_and_abandoned_ones_are_swept(tmp_path: Path) -> None:
    abandoned = tmp_path / f"reportscore-metrics-{dead_pid()}-abc"
    abandoned.mkdir()
    (abandoned / "counter_1.db").write_bytes(b"")
    in_use = tmp_path / f"reportscore-metrics-{os.getpid()}-def"  # this (live) process's
    in_use.mkdir()
    created, closed = run("-", tmp_path)
    path, owned, files = created.split(" ", 2)
    assert Path(path).parent == tmp_path
    assert owned == "True"
    assert "gauge_livesum_" in files
    assert closed == "False False"  # removed, and the variable is gone with it
    assert not abandoned.exists()
    assert in_use.exists()


def test_a_configured_directory_is_emptied_of_old_metric_files_only_and_kept(tmp_path: Path) -> None:
    configured = tmp_path / "metrics"
    configured.mkdir()
    (configured / "counter_12345.db").write_bytes(b"stale")
    (configured / "histogram_12345.db").write_bytes(b"stale")
    (configured / "README").write_text("not ours")
    created, closed = run(str(configured), tmp_path)
    path, owned, files = created.split(" ", 2)
    assert Path(path) == configured.resolve()
    assert owned == "False"
    assert "counter_12345.db" not in files
    assert "histogram_12345.db" not in files
    assert "README" in files
    assert closed == "True False"


def test_enable_refuses_once_prometheus_client_recorded_in_single_process_mode() -> None:
    from prometheus_client import values

    assert values.ValueClass is values.MutexValue  # this test process records in single-process mode
    with pytest.raises(RuntimeError, match="imported before multiprocess mode"):
        multiproc.enable(None)
    assert multiproc.ENV_VAR not in os.environ
