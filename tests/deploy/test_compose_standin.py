"""deploy/docker-compose.yml, run: each reportscore service's command as a container stand-in (tests/deploy/standin.py).

From deploy/.env.example with its placeholders replaced by real secrets (as an operator does), each service runs
its ``command`` with its ``environment`` over the image's ENV, as the image's user, in a private root of its own,
sharing only the named volumes the file declares, from the runtime-only environment. ``postgres`` and ``redis``
resolve to the local servers (a database and a key prefix of this test's own). Then: the first admin key by the
documented step, a model version registered over HTTP and promoted, every worker scoring with it, and the API and a
worker recreated (new containers) with the registered artifacts still served.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reportscore.settings import Settings
from tests.deploy import rollout
from tests.deploy.manifests import (
    THIRD_PARTY_SERVICES,
    compose,
    compose_argv,
    compose_environment,
    compose_services,
    compose_volume_mounts,
    env_example,
    interpolate,
    with_real_secrets,
)
from tests.deploy.standin import (
    Container,
    ContainerProcess,
    Deployment,
    Mount,
    compose_volume,
    image_environment,
    image_uid_gid,
    image_workdir,
    remap_ports,
    running_deployment,
    with_local_services,
)
from tests.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class ComposeStandIn(Deployment):
    """The reportscore services of docker-compose.yml as container stand-ins on this machine."""

    def __init__(self, *, venv: Path, work_dir: Path, pg_url: str, redis_prefix: str) -> None:
        super().__init__(venv=venv, work_dir=work_dir, pg_url=pg_url, redis_prefix=redis_prefix)
        self.env_file = with_real_secrets(env_example())
        self.volumes: dict[str, Path] = {}
        self.host_ports: dict[tuple[str, int], int] = {}
        declared = compose().get("volumes") or {}
        self.declared_volumes = set(declared)

    def volume(self, name: str, target: str) -> Path:
        assert name in self.declared_volumes, f"volume {name} is not declared at the top level"
        if name not in self.volumes:
            self.volumes[name] = compose_volume(self.work_dir / "volumes" / name, target)
        return self.volumes[name]

    def host_port(self, service: str, container_port: int) -> int:
        return self.host_ports.setdefault((service, container_port), free_port())

    def environment(self, service: dict[str, Any]) -> dict[str, str]:
        env = {**image_environment(self.venv)}
        env.update({key: interpolate(value, self.env_file) for key, value in compose_environment(service).items()})
        return with_local_services(env, pg_url=self.pg_url, redis_prefix=self.redis_prefix)

    def container(self, name: str, *, replica: int = 0, argv: list[str] | None = None) -> ContainerProcess:
        service = compose_services()[name]
        env = self.environment(service)
        ports: dict[int, int] = {}
        for entry in service.get("ports", []):
            container_port = int(interpolate(str(entry), self.env_file).rsplit(":", 1)[1])
            ports[container_port] = self.host_port(name, container_port)
        if name == "worker":
            # Not published, but bound by every worker: in the shared network namespace each needs its own.
            default = Settings.model_fields["worker_metrics_port"].default
            env.setdefault("REPORTSCORE_WORKER_METRICS_PORT", str(default))
            ports[default] = self.host_port(f"{name}-{replica}", default)
        command, env = remap_ports(argv or compose_argv(service["command"]), env, ports)
        uid, gid = image_uid_gid()
        assert "user" not in service, "teach the stand-in compose's `user`"
        assert "read_only" not in service, "teach the stand-in compose's `read_only`"
        spec = Container(
            name=f"{name}-{replica}" if argv is None else f"{name}-run",
            argv=command,
            env=env,
            venv=self.venv,
            mounts=[Mount(self.volume(vol, target), target) for vol, target in compose_volume_mounts(service)],
            uid=uid,
            gid=gid,
            workdir=service.get("working_dir", image_workdir()),
        )
        process = ContainerProcess(spec, state_dir=self.work_dir / "containers")
        (self.work_dir / "containers").mkdir(exist_ok=True)
        return process


@pytest.fixture
def deployment(
    runtime_venv: Path, tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> Iterator[ComposeStandIn]:
    yield from running_deployment(
        ComposeStandIn, venv=runtime_venv, work_dir=tmp_path, pg_url=pg_url, redis_prefix=redis_url_and_prefix[1]
    )


def _reportscore_services() -> list[str]:
    return [name for name in compose_services() if name not in THIRD_PARTY_SERVICES]


def _one_shot_services() -> list[str]:
    """Services others wait for with ``service_completed_successfully`` (migrate)."""
    return sorted(
        {
            dependency
            for service in compose_services().values()
            for dependency, condition in (service.get("depends_on") or {}).items()
            if isinstance(condition, dict) and condition.get("condition") == "service_completed_successfully"
        }
    )


@pytest.mark.timeout(900)
def test_compose_services_share_registered_models_and_survive_recreation(
    deployment: ComposeStandIn, tmp_path: Path
) -> None:
    services = compose_services()
    client_key = deployment.env_file["API_KEY"]
    one_shot = _one_shot_services()
    assert one_shot == ["migrate"]
    for name in one_shot:
        migrate = deployment.container(name)
        code = migrate.run()
        assert code == 0, f"{name} failed:\n{migrate.logs()[-6000:]}"

    api = deployment.start(deployment.container("api"))
    api_url = f"http://127.0.0.1:{deployment.host_port('api', 8081)}"
    rollout.wait_http_ok(api, f"{api_url}/health/ready")

    replicas = int(services["worker"].get("deploy", {}).get("replicas", 1))
    concurrency = int(deployment.environment(services["worker"])["REPORTSCORE_WORKER_CONCURRENCY"])
    workers = [deployment.start(deployment.container("worker", replica=index)) for index in range(replicas)]
    for worker in workers:
        rollout.wait_worker_ready(worker, concurrency=concurrency)

    started = {"api", "worker", *one_shot}
    for name in sorted(set(_reportscore_services()) - started):  # flower
        other = deployment.start(deployment.container(name))
        port = deployment.host_port(name, 5555)
        rollout.wait_http_ok(other, f"http://127.0.0.1:{port}/healthcheck")

    keys_run = deployment.container("api", argv=rollout.FIRST_ADMIN_KEY_ARGV)
    assert keys_run.run() == 0, keys_run.logs()
    admin_key = rollout.key_from_output(keys_run.logs())

    since = [rollout.count_records(w, "champion switched", model_version=rollout.NEW_VERSION) for w in workers]
    clf = rollout.register_and_promote(api_url, admin_key, tmp_path)
    rollout.wait_every_worker_switched(workers, concurrency=concurrency, since=since)
    rollout.check_jobs_scored_with_new_version(api_url, client_key, clf)

    stored = [
        path
        for volume in deployment.volumes.values()
        for path in volume.rglob(f"{rollout.NEW_VERSION}/*")
        if path.is_file()
    ]
    assert stored, f"the artifacts of {rollout.NEW_VERSION} are on no declared volume ({sorted(deployment.volumes)})"

    # Recreate the API and one worker: new containers (fresh own filesystems), the same volumes.
    api.stop()
    api.spawn()
    rollout.wait_http_ok(api, f"{api_url}/health/ready")
    assert rollout.champion_over_http(api_url, admin_key) == rollout.NEW_VERSION
    workers[0].stop()
    workers[0].log_path.write_text("")
    workers[0].spawn()
    rollout.wait_worker_ready(workers[0], concurrency=concurrency, version=rollout.NEW_VERSION)
    rollout.check_jobs_scored_with_new_version(api_url, client_key, clf)
