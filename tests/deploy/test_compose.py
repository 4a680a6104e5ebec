"""deploy/docker-compose.yml is a valid Compose file and wires the distributed deployment as documented."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from reportscore.settings import Settings
from tests.deploy.manifests import (
    COMPOSE_FILE,
    SCHEMAS,
    THIRD_PARTY_SERVICES,
    compose,
    compose_argv,
    compose_environment,
    compose_services,
    compose_volume_mounts,
    dockerfile,
    env_example,
    interpolate,
    interpolated_variables,
    with_real_secrets,
)

EXPECTED_SERVICES = {"api", "worker", "redis", "postgres", "flower", "migrate"}


def test_compose_file_validates_against_the_compose_specification_schema() -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    validator_class = jsonschema.Draft202012Validator
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(compose()), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_vendored_schema_rejects_what_compose_rejects() -> None:
    """Guards the guard: an unknown service key and an unknown depends_on condition are errors."""
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    broken: dict[str, Any] = json.loads(json.dumps(compose()))
    broken["services"]["api"]["comand"] = ["reportscore", "serve"]
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(compose()))
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    assert not validator.is_valid(broken)


def test_compose_specification_form_without_version_key() -> None:
    assert "version" not in compose()
    assert set(compose_services()) == EXPECTED_SERVICES


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES - THIRD_PARTY_SERVICES))
def test_reportscore_services_build_the_image_from_deploy_dockerfile(name: str) -> None:
    service = compose_services()[name]
    assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    context = (COMPOSE_FILE.parent / service["build"]["context"]).resolve()
    assert (context / service["build"]["dockerfile"]).is_file()
    assert (context / ".dockerignore").is_file()
    assert str(service["image"]).startswith("reportscore:")


def test_dependencies_start_in_order() -> None:
    services = compose_services()
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker", "flower"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends_on["redis"] == {"condition": "service_healthy"}, name
    for name in ("redis", "postgres", "api", "worker", "flower"):
        assert "healthcheck" in services[name], name
        assert not services[name]["healthcheck"].get("disable"), name


def test_redis_is_durable_and_never_evicts_queued_messages() -> None:
    redis = compose_services()["redis"]
    assert str(redis["image"]).startswith("redis:7")
    argv = compose_argv(redis["command"])
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert argv[argv.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])


def test_postgres_has_a_volume_and_its_password_comes_from_the_environment() -> None:
    postgres = compose_services()["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert any(str(volume).endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert compose_environment(postgres)["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_ports_workers_and_flower_auth() -> None:
    services = compose_services()
    assert any(str(port).endswith(":8081") for port in services["api"]["ports"])
    assert any(str(port).endswith(":5555") for port in services["flower"]["ports"])
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "ports" not in services["worker"]
    assert compose_environment(services["flower"])["REPORTSCORE_FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH")
    # Flower binds REPORTSCORE_HOST: it must listen on the container's interfaces for the published port to work.
    image_host = dockerfile().env().get("REPORTSCORE_HOST")
    assert compose_environment(services["flower"]).get("REPORTSCORE_HOST", image_host) == "0.0.0.0"


def test_worker_stop_grace_period_covers_a_running_task() -> None:
    grace = str(compose_services()["worker"]["stop_grace_period"])
    assert re.fullmatch(r"\d+s", grace), "write it in seconds, e.g. 330s"
    assert int(grace[:-1]) > Settings.model_fields["task_time_limit_s"].default


def test_every_substituted_variable_is_documented_in_env_example() -> None:
    used = interpolated_variables()
    documented = set(env_example())
    assert {"POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH"} <= used
    assert used <= documented, f"add to deploy/.env.example: {sorted(used - documented)}"
    assert documented <= used, f"not used by docker-compose.yml: {sorted(documented - used)}"


def _service_settings(name: str, env: dict[str, str], data_dir: Path) -> Settings:
    values = {
        key.removeprefix("REPORTSCORE_").lower(): interpolate(value, env)
        for key, value in compose_environment(compose_services()[name]).items()
    }
    values.setdefault("data_dir", str(data_dir))
    return Settings.model_validate(values)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES - THIRD_PARTY_SERVICES))
def test_service_environment_makes_valid_distributed_settings(name: str, tmp_path: Path) -> None:
    """With real values for .env.example's placeholders, each service's environment passes start-up validation."""
    settings = _service_settings(name, with_real_secrets(env_example()), tmp_path)
    assert settings.mode == "distributed"
    assert not settings.is_sqlite


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("name", ["api", "worker", "flower"])
def test_env_example_placeholders_are_refused_at_start_up(name: str, tmp_path: Path) -> None:
    """Copying .env.example without setting the passwords stops the processes that use them."""
    with pytest.raises(ValidationError, match="placeholder"):
        _service_settings(name, env_example(), tmp_path)


def test_every_service_that_loads_models_mounts_the_one_model_store_volume() -> None:
    """A version registered through the API must be readable by the workers: REPORTSCORE_MODEL_STORE_URL is on
    one named volume that migrate (first champion), api (registration) and worker (loading) all mount."""
    services = compose_services()
    volumes = set()
    for name in ("migrate", "api", "worker"):
        store = compose_environment(services[name])["REPORTSCORE_MODEL_STORE_URL"]
        assert store.startswith("file:///"), name
        path = store.removeprefix("file://")
        covering = [vol for vol, target in compose_volume_mounts(services[name]) if path.startswith(target + "/")]
        assert len(covering) == 1, f"{name}: {path} is on no declared volume"
        volumes.add(covering[0])
    (volume,) = volumes
    assert volume in compose()["volumes"]
