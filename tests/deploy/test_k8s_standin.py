"""deploy/k8s, run: each pod's container as a container stand-in (tests/deploy/standin.py), as its manifest says.

Environment: the image's ENV, then the ConfigMap and the Secret (``envFrom``), the Secret's placeholders replaced by
real values. The pod's ``runAsUser``/``runAsGroup``/``fsGroup``; ``readOnlyRootFilesystem: true`` honoured (the
root is remounted read-only), so the ``volumeMounts`` are the only writable paths: each ``emptyDir`` new per pod,
each PersistentVolumeClaim one directory shared by every pod that mounts it (group-writable by ``fsGroup``, as
the kubelet makes it). The migrate Job runs to completion, then the API, a worker and Flower start; a model version
registered over HTTP through one API pod and promoted is served through every API pod, reaches the worker, and is
loaded by a new worker pod.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reportscore.settings import Settings
from tests.deploy import rollout
from tests.deploy.manifests import K8sDoc, container_argv, containers, k8s_one, pod_spec, with_real_secrets
from tests.deploy.standin import (
    Container,
    ContainerProcess,
    Deployment,
    Mount,
    image_environment,
    image_workdir,
    new_volume,
    remap_ports,
    running_deployment,
    with_local_services,
)
from tests.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class KubernetesStandIn(Deployment):
    """Pods of deploy/k8s as container stand-ins on this machine."""

    def __init__(self, *, venv: Path, work_dir: Path, pg_url: str, redis_prefix: str) -> None:
        super().__init__(venv=venv, work_dir=work_dir, pg_url=pg_url, redis_prefix=redis_prefix)
        self.claims: dict[str, Path] = {}
        self.pods = 0
        self.settings = with_real_secrets(
            {
                **k8s_one("ConfigMap", "reportscore-config").data["data"],
                **k8s_one("Secret", "reportscore-secrets").data["stringData"],
            }
        )

    def _env_from(self, container: dict[str, Any]) -> dict[str, str]:
        sources = {
            (kind, source[kind]["name"])
            for source in container.get("envFrom", [])
            for kind in ("configMapRef", "secretRef")
            if kind in source
        }
        assert sources == {("configMapRef", "reportscore-config"), ("secretRef", "reportscore-secrets")}
        assert not container.get("env"), "teach the stand-in `env`"
        return dict(self.settings)

    def _volume(self, pod: dict[str, Any], name: str, pod_dir: Path, fs_group: int | None) -> Path:
        (volume,) = [v for v in pod["volumes"] if v["name"] == name]
        if "emptyDir" in volume:  # new for every pod, world-writable like the kubelet's
            return new_volume(pod_dir / "volumes" / name, mode=0o777)
        claim = volume["persistentVolumeClaim"]["claimName"]
        k8s_one("PersistentVolumeClaim", claim)  # the claim the pod names is in the manifests
        if claim not in self.claims:
            gid = fs_group if fs_group is not None else 0
            self.claims[claim] = new_volume(self.work_dir / "claims" / claim, gid=gid, mode=0o2775)
        return self.claims[claim]

    def pod(
        self, doc: K8sDoc, *, argv: list[str] | None = None, ports: dict[int, int] | None = None
    ) -> ContainerProcess:
        """A new pod of ``doc``'s template (its one container); ``argv`` replaces the command (``kubectl exec``)."""
        pod = pod_spec(doc)
        assert pod is not None
        (container,) = containers(doc)
        security = pod.get("securityContext", {})
        uid, gid, fs_group = security["runAsUser"], security.get("runAsGroup", 0), security.get("fsGroup")
        assert security.get("runAsNonRoot") is True
        self.pods += 1
        pod_dir = self.work_dir / f"pod-{self.pods}-{doc.name}"
        mounts = [
            Mount(self._volume(pod, mount["name"], pod_dir, fs_group), mount["mountPath"])
            for mount in container.get("volumeMounts", [])
        ]
        env = with_local_services(
            {**image_environment(self.venv), **self._env_from(container)},
            pg_url=self.pg_url,
            redis_prefix=self.redis_prefix,
        )
        command, env = remap_ports(argv or container_argv(container), env, ports or {})
        spec = Container(
            name=f"{doc.name}-{self.pods}",
            argv=command,
            env=env,
            venv=self.venv,
            mounts=mounts,
            read_only_root=bool(container.get("securityContext", {}).get("readOnlyRootFilesystem")),
            uid=uid,
            gid=gid,
            groups=tuple(g for g in (gid, fs_group) if g is not None),
            workdir=container.get("workingDir", image_workdir()),
        )
        pod_dir.mkdir(parents=True, exist_ok=True)
        return ContainerProcess(spec, state_dir=pod_dir)


@pytest.fixture
def cluster(
    runtime_venv: Path, tmp_path: Path, pg_url: str, redis_url_and_prefix: tuple[str, str]
) -> Iterator[KubernetesStandIn]:
    yield from running_deployment(
        KubernetesStandIn, venv=runtime_venv, work_dir=tmp_path, pg_url=pg_url, redis_prefix=redis_url_and_prefix[1]
    )


_WRITABLE_PROBE = """
import sys
for path in sys.argv[1:]:
    try:
        open(f"{path}/probe", "w").close()
    except OSError:
        continue
    print("writable", path)
"""


@pytest.mark.timeout(900)
def test_kubernetes_pods_run_with_only_their_volumes_writable(cluster: KubernetesStandIn, tmp_path: Path) -> None:
    job = k8s_one("Job", "reportscore-migrate")
    migrate = cluster.pod(job)
    assert migrate.container.read_only_root, "the Job's container must keep readOnlyRootFilesystem"
    assert migrate.run() == 0, f"the migrate Job failed:\n{migrate.logs()[-6000:]}"

    api_doc = k8s_one("Deployment", "reportscore-api")
    probe = cluster.pod(
        api_doc,
        argv=["python", "-c", _WRITABLE_PROBE, "/", "/app", "/home/reportscore", "/var/lib/reportscore", "/tmp"],
    )
    assert probe.run() == 0, probe.logs()
    writable = {line.split(" ", 1)[1] for line in probe.logs().splitlines() if line.startswith("writable ")}
    assert writable == {mount.target for mount in probe.container.mounts} == {"/tmp", "/var/lib/reportscore"}

    api_urls = []
    for _ in range(api_doc.data["spec"]["replicas"]):
        api_port = free_port()
        api = cluster.start(cluster.pod(api_doc, ports={8081: api_port}))
        api_urls.append(f"http://127.0.0.1:{api_port}")
        rollout.wait_http_ok(api, f"{api_urls[-1]}/health/ready")

    metrics_default = Settings.model_fields["worker_metrics_port"].default
    cluster.settings.setdefault("REPORTSCORE_WORKER_METRICS_PORT", str(metrics_default))
    worker = cluster.start(
        cluster.pod(k8s_one("Deployment", "reportscore-worker"), ports={metrics_default: free_port()})
    )
    concurrency = int(cluster.settings["REPORTSCORE_WORKER_CONCURRENCY"])
    rollout.wait_worker_ready(worker, concurrency=concurrency)

    flower_port = free_port()
    flower = cluster.start(cluster.pod(k8s_one("Deployment", "reportscore-flower"), ports={5555: flower_port}))
    rollout.wait_http_ok(flower, f"http://127.0.0.1:{flower_port}/healthcheck")

    exec_run = cluster.pod(api_doc, argv=rollout.FIRST_ADMIN_KEY_ARGV)
    assert exec_run.run() == 0, exec_run.logs()
    admin_key = rollout.key_from_output(exec_run.logs())

    client_key = cluster.settings["REPORTSCORE_BOOTSTRAP_API_KEY"]
    clf = rollout.register_and_promote(api_urls[0], admin_key, tmp_path)
    rollout.wait_every_worker_switched([worker], concurrency=concurrency, since=[0])
    for api_url in api_urls:  # registered through one API pod, served through every one
        assert rollout.champion_over_http(api_url, admin_key) == rollout.NEW_VERSION
        rollout.check_jobs_scored_with_new_version(api_url, client_key, clf, jobs=4)

    # A new worker pod (a rollout, a rescheduled pod) finds the registered version on the claim.
    worker.stop()
    replacement = cluster.start(
        cluster.pod(k8s_one("Deployment", "reportscore-worker"), ports={metrics_default: free_port()})
    )
    rollout.wait_worker_ready(replacement, concurrency=concurrency, version=rollout.NEW_VERSION)
    rollout.check_jobs_scored_with_new_version(api_urls[1], client_key, clf, jobs=4)
