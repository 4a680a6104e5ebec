"""deploy/Dockerfile installs like CI does, runs as a non-root user and serves the API by default."""

from __future__ import annotations

from tests.deploy.manifests import DOCKERIGNORE, ROOT, dockerfile, http_probe


def test_base_image_is_python_311_slim() -> None:
    assert dockerfile().all("FROM") == ["python:3.11-slim"]


def test_installs_through_the_ci_bootstrap_script_without_dev_tools() -> None:
    runs = dockerfile().all("RUN")
    installs = [run for run in runs if "scripts/bootstrap.sh" in run]
    assert len(installs) == 1, runs
    assert "--dev" not in installs[0]
    assert (ROOT / "scripts" / "bootstrap.sh").is_file()
    for run in runs:  # no second, divergent install path
        assert "uv sync" not in run, run
        assert "pip install" not in run, run


def test_venv_is_on_path_and_matches_workdir() -> None:
    workdir = dockerfile().last("WORKDIR")
    assert dockerfile().env()["PATH"].startswith(f"{workdir}/.venv/bin:")


def test_default_command_serves_the_api_on_8081() -> None:
    assert dockerfile().cmd() == ["reportscore", "serve", "--host", "0.0.0.0", "--port", "8081"]
    assert dockerfile().all("EXPOSE") == ["8081"]
    assert not dockerfile().all("ENTRYPOINT"), "k8s `command` and compose `command` replace CMD only without one"


def test_runs_as_a_non_root_user() -> None:
    user = dockerfile().last("USER").split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"


def test_healthcheck_probes_liveness_with_python() -> None:
    assert http_probe(dockerfile().healthcheck()) == (8081, "/health/live")


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".tools", "data", "logs", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"} <= patterns
    assert "deploy/.env" in patterns
    # what the image build needs is not excluded
    for needed in ("src", "scripts", "uv.lock", "pyproject.toml", "README.md"):
        assert needed not in patterns


def test_optional_extras_are_a_build_argument_of_the_one_install() -> None:
    """``--build-arg EXTRAS=tensorflow`` (Keras models) goes to bootstrap.sh as ``--extra tensorflow``."""
    assert 'EXTRAS=""' in dockerfile().all("ARG"), "runtime dependencies only by default"
    (install,) = [run for run in dockerfile().all("RUN") if "scripts/bootstrap.sh" in run]
    assert "for extra in $EXTRAS" in install
    assert '--extra "$extra"' in install
    assert 'bootstrap.sh "$@"' in install
