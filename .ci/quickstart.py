"""The README's quick start, walked the way a new user walks it, in the checkout it is run from.

    python3 .ci/quickstart.py run        # the run command, then the curl example; checks the scores; stops the service
    python3 .ci/quickstart.py test-command   # prints the README's test command

The README's "Quick start" section marks its blocks with HTML comments: ``<!-- quickstart: run -->`` (the run
command), ``<!-- quickstart: example -->`` (the curl example), ``<!-- quickstart: answer -->`` (the answer it shows)
and ``<!-- quickstart: test -->`` (the test command), each followed by one fenced block. ``run`` starts the run
command exactly as written, with only the runtime dependencies it installs itself, waits for ``/heartbeat``, runs
the example block with bash, and checks that it printed a ``SUCCESS`` answer

- with the fields and scores of the answer the README shows, and
- whose scores equal, to 1e-6, the bundled reference model's own XGBoost prediction for the reports in the
  example's body (encoded from the model's ``schema.json`` here, independently of the service's code).

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path.cwd()
SECTION = "## Quick start"
START_TIMEOUT_S = 900.0  # a first install from the lock file downloads every wheel
EXAMPLE_TIMEOUT_S = 120.0
TOLERANCE = 1e-6


def _fail(message: str) -> NoReturn:
    print(f"quickstart: FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def _block(name: str) -> str:
    """The fenced block after ``<!-- quickstart: NAME -->`` in the README's quick start."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if SECTION not in readme:
        _fail(f"README.md has no {SECTION!r} section")
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"<!-- quickstart: {name} -->\s*```[a-z]*\n(.*?)```", section, re.DOTALL)
    if not match:
        _fail(f"the quick start has no block marked <!-- quickstart: {name} -->")
    return match.group(1)


def _command(name: str) -> str:
    lines = [line.strip() for line in _block(name).splitlines() if line.strip()]
    if len(lines) != 1:
        _fail(f"the quick start's {name} block is not one command: {lines}")
    return lines[0]


def _base_url(example: str) -> str:
    match = re.search(r"https?://[0-9A-Za-z.\-\[\]:]+", example)
    if not match:
        _fail("the curl example names no http:// address")
    return match.group(0)


def _reports(example: str) -> list[dict[str, Any]]:
    """The JSON list the example posts (the ``-d '…'`` argument of its first POST)."""
    for token in shlex.split(example.replace("\\\n", " "), comments=True):
        stripped = token.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            body = json.loads(stripped)
            if isinstance(body, list) and body and all(isinstance(r, dict) for r in body):
                return body
    _fail("the curl example posts no JSON list of reports")


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _fail(f"the run command exited with {process.returncode} before {url} answered (its output is above)")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (the README's own address)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)  # polling an address that has no event to wait on
    _fail(f"{url} did not answer within {timeout_s:.0f} s")


def _reference_scores(reports: list[dict[str, Any]]) -> list[float]:
    """XGBoost's own probabilities for ``reports`` from the bundled reference model, with the run's environment."""
    program = r"""
import json, sys
import numpy as np, xgboost
model_dir = sys.argv[1]
schema = json.load(open(f"{model_dir}/schema.json"))
reports = json.loads(sys.stdin.read())
def value(report, feature):
    raw = report[feature["source"]]
    if feature["encoding"] == "one_hot":
        return 1.0 if raw == feature["category"] else 0.0
    return float(raw)
matrix = np.array([[value(r, f) for f in schema["features"]] for r in reports], dtype=np.float32)
booster = xgboost.Booster()
booster.load_model(f"{model_dir}/model.ubj")
print(json.dumps([float(s) for s in booster.inplace_predict(matrix, validate_features=False)]))
"""
    model_dir = ROOT / "src" / "reportscore" / "reference_model"
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", program, str(model_dir)],
        input=json.dumps(reports),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        _fail(f"could not compute the reference model's scores: {result.stderr.strip()[-2000:]}")
    scores: list[float] = json.loads(result.stdout)
    return scores


def _printed_json(stdout: str) -> list[Any]:
    values = []
    for line in stdout.splitlines():
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return values


def _check_example(example: str, stdout: str) -> None:
    answers = [v for v in _printed_json(stdout) if isinstance(v, dict) and v.get("status") == "SUCCESS"]
    if not answers:
        _fail(f"the example printed no SUCCESS answer:\n{stdout}")
    scores = answers[-1].get("score")
    reference = _reference_scores(_reports(example))
    if not isinstance(scores, list) or len(scores) != len(reference):
        _fail(f"the answer's scores {scores!r} are not one per report ({len(reference)} reports)")
    shown = json.loads(_block("answer"))
    if sorted(answers[-1]) != sorted(shown) or scores != shown["score"]:
        _fail(f"the service answered\n  {answers[-1]}\nwhere the README shows\n  {shown}")
    worst = max(abs(float(a) - b) for a, b in zip(scores, reference, strict=True))
    if worst > TOLERANCE:
        _fail(f"scores {scores} differ from the reference model's {reference} by {worst:.3g}")
    print(f"quickstart: SUCCESS with scores {scores}, as the README shows")
    print(f"quickstart: the reference model's own XGBoost prediction is {reference}")
    print(f"quickstart: largest difference {worst:.3g} (tolerance {TOLERANCE:g})")


def run() -> None:
    command = _command("run")
    example = _block("example")
    base = _base_url(example)
    print(f"quickstart: {command!r} in {ROOT}", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPORTSCORE_")}
    service = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, start_new_session=True)
    try:
        _wait_for(f"{base}/heartbeat", service, START_TIMEOUT_S)
        print("quickstart: the service answers; running the README's example", flush=True)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", example],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=EXAMPLE_TIMEOUT_S,
            check=False,
        )
        sys.stdout.write(result.stdout if result.stdout.endswith("\n") else result.stdout + "\n")
        if result.returncode != 0:
            _fail(f"the example exited with {result.returncode}: {result.stderr.strip()}")
        _check_example(example, result.stdout)
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGINT)  # Ctrl-C in the user's terminal
            try:
                service.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
                service.wait()
    print(f"quickstart: the service stopped (exit {service.returncode})")


def main() -> None:
    if sys.argv[1:] == ["run"]:
        run()
    elif sys.argv[1:] == ["test-command"]:
        print(_command("test"))
    else:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
