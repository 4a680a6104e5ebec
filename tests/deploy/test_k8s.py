"""deploy/k8s: every manifest is valid for the Kubernetes versions we support; the KEDA objects are checked by shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from reportscore.settings import Settings
from tests.deploy.manifests import (
    DOCKERFILE,
    K8S_DIR,
    KUSTOMIZATION,
    PROBES,
    K8sDoc,
    container_argv,
    containers,
    dockerfile,
    k8s_docs,
    k8s_find,
    k8s_one,
    kustomization,
    pod_spec,
    with_real_secrets,
)

# Oldest supported (the API's preStop `sleep` action is on by default from 1.30) and the newest schema that
# kubernetes-validate ships; both offline.
K8S_VERSIONS = ("1.30.0", "1.37.0")

WORKER = "reportscore-worker"
API = "reportscore-api"
CONFIG = "reportscore-config"
SECRETS = "reportscore-secrets"

IMAGE = "reportscore"
CORE_DOCS = [doc for doc in k8s_docs() if not doc.is_keda]


def _pod_labels(doc: K8sDoc) -> dict[str, str]:
    labels: dict[str, str] = doc.data["spec"]["template"]["metadata"]["labels"]
    return labels


def _keys(doc: K8sDoc) -> set[str]:
    return {*doc.data.get("data", {}), *doc.data.get("stringData", {})}


def test_manifests_are_found() -> None:
    kinds = {(doc.kind, doc.name) for doc in k8s_docs()}
    assert ("Deployment", API) in kinds
    assert ("Deployment", WORKER) in kinds
    assert ("Service", API) in kinds
    assert ("Job", "reportscore-migrate") in kinds
    assert ("ConfigMap", CONFIG) in kinds
    assert ("Secret", SECRETS) in kinds
    assert ("ScaledObject", WORKER) in kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("doc", CORE_DOCS, ids=[doc.id for doc in CORE_DOCS])
def test_manifest_validates_strictly_against_the_kubernetes_schema(doc: K8sDoc, version: str) -> None:
    try:
        kubernetes_validate.validate(doc.data, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{doc.id} (Kubernetes {version}): {list(error.absolute_path)}: {error.message}")


def test_validation_catches_a_misspelled_field() -> None:
    data: dict[str, Any] = {**k8s_one("Job", "reportscore-migrate").data}
    data["spec"] = {**data["spec"], "backofLimit": 4}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(data, K8S_VERSIONS[0], strict=True)


def test_api_deployment_has_two_replicas_probes_and_resources() -> None:
    api = k8s_one("Deployment", API)
    assert api.data["spec"]["replicas"] == 2
    (container,) = containers(api)
    assert container_argv(container) == ["reportscore", "serve", "--host", "0.0.0.0", "--port", "8081"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert {port["containerPort"] for port in container["ports"]} == {8081}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]


def test_api_service_selects_the_api_pods() -> None:
    service = k8s_one("Service", API)
    labels = _pod_labels(k8s_one("Deployment", API))
    assert service.data["spec"]["selector"].items() <= labels.items()
    (container,) = containers(k8s_one("Deployment", API))
    port_names = {port["name"] for port in container["ports"]}
    assert all(port["targetPort"] in port_names for port in service.data["spec"]["ports"])


def test_worker_probes_and_warm_shutdown() -> None:
    worker = k8s_one("Deployment", WORKER)
    (container,) = containers(worker)
    assert container_argv(container) == ["reportscore", "worker"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == ["reportscore", "worker-ping"], probe
        # worker-ping waits 2 s for the answer, after starting a Python process.
        assert container[probe]["timeoutSeconds"] >= 5, probe
    spec = pod_spec(worker)
    assert spec is not None
    assert spec["terminationGracePeriodSeconds"] > Settings.model_fields["task_time_limit_s"].default
    assert "replicas" not in worker.data["spec"], "KEDA owns the worker replica count"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]


def test_migrate_job_runs_migrate_once() -> None:
    job = k8s_one("Job", "reportscore-migrate")
    (container,) = containers(job)
    assert container_argv(container) == ["reportscore", "migrate"]
    spec = pod_spec(job)
    assert spec is not None
    assert spec["restartPolicy"] in ("Never", "OnFailure")


@pytest.mark.parametrize("doc", [doc for doc in k8s_docs() if containers(doc)], ids=lambda doc: doc.id)
def test_pods_take_their_settings_from_the_configmap_and_secret(doc: K8sDoc) -> None:
    for container in containers(doc):
        refs = {
            (kind, source[kind]["name"])
            for source in container.get("envFrom", [])
            for kind in ("configMapRef", "secretRef")
            if kind in source
        }
        assert refs == {("configMapRef", CONFIG), ("secretRef", SECRETS)}, doc.id


@pytest.mark.parametrize("doc", [doc for doc in k8s_docs() if containers(doc)], ids=lambda doc: doc.id)
def test_pods_run_as_the_image_user_and_not_as_root(doc: K8sDoc) -> None:
    spec = pod_spec(doc)
    assert spec is not None
    uid = int(dockerfile().last("USER").split(":")[0])
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == uid, f"the USER of {DOCKERFILE.name}"
    for container in containers(doc):
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["image"] == IMAGE, f"{doc.id}: the plain name; kustomization.yaml sets registry and tag"


def test_probes_of_every_container_are_set() -> None:
    for doc in k8s_docs():
        for container in containers(doc):
            if doc.kind == "Job":
                assert not any(probe in container for probe in PROBES), doc.id
            else:
                assert "livenessProbe" in container, doc.id
                assert "readinessProbe" in container, doc.id


def test_flower_listens_on_the_pod_interfaces() -> None:
    """`reportscore flower` binds REPORTSCORE_HOST; 127.0.0.1 would make the Service and the probes fail."""
    image_host = dockerfile().env().get("REPORTSCORE_HOST")
    assert k8s_one("ConfigMap", CONFIG).data["data"].get("REPORTSCORE_HOST", image_host) == "0.0.0.0"


def _config_and_secret() -> dict[str, str]:
    return {**k8s_one("ConfigMap", CONFIG).data["data"], **k8s_one("Secret", SECRETS).data["stringData"]}


def _settings_of(merged: dict[str, str], data_dir: Path) -> Settings:
    values = {key.removeprefix("REPORTSCORE_").lower(): value for key, value in merged.items()}
    values["data_dir"] = str(data_dir)
    return Settings.model_validate(values)


def test_config_and_secret_template_make_valid_distributed_settings(clean_env: None, tmp_path: Path) -> None:
    """The ConfigMap plus the Secret template, its placeholders replaced, pass Settings' start-up validation."""
    merged = _config_and_secret()
    assert {"REPORTSCORE_DATABASE_URL", "REPORTSCORE_BROKER_URL", "REPORTSCORE_FLOWER_BASIC_AUTH"} <= set(merged)
    settings = _settings_of(with_real_secrets(merged), tmp_path)
    assert settings.mode == "distributed"
    assert not settings.is_sqlite


def test_the_secret_templates_placeholders_are_refused_at_start_up(clean_env: None, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="placeholder 'CHANGE_ME'"):
        _settings_of(_config_and_secret(), tmp_path)


def test_kustomization_sets_the_image_once_for_every_manifest() -> None:
    data = kustomization()
    assert data["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert data["kind"] == "Kustomization"
    (image,) = data["images"]
    assert image["name"] == IMAGE
    assert image["newTag"]
    resources = set(data["resources"])
    files = {path.name for path in K8S_DIR.glob("*.yaml")} - {KUSTOMIZATION.name}
    # The Secret template would reset the real Secret; the KEDA objects need KEDA's CRDs: both applied on their own.
    assert files - resources == {"secrets.example.yaml", "keda-scaledobject.yaml"}
    assert resources <= files
    workloads = [doc for doc in k8s_docs() if containers(doc) and doc.path.name in resources]
    assert {doc.kind for doc in workloads} == {"Deployment", "Job"}


def test_the_model_store_is_one_claim_shared_by_migrate_api_and_worker() -> None:
    """REPORTSCORE_MODEL_STORE_URL (from the ConfigMap) is on a ReadWriteMany claim that every pod that registers
    or loads models mounts there."""
    store = k8s_one("ConfigMap", CONFIG).data["data"]["REPORTSCORE_MODEL_STORE_URL"]
    assert store.startswith("file:///")
    store_path = store.removeprefix("file://")
    claims = set()
    for kind, name in (("Job", "reportscore-migrate"), ("Deployment", API), ("Deployment", WORKER)):
        doc = k8s_one(kind, name)
        spec = pod_spec(doc)
        assert spec is not None
        (container,) = containers(doc)
        (mount,) = [m for m in container["volumeMounts"] if store_path.startswith(m["mountPath"].rstrip("/") + "/")]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        claims.add(volume["persistentVolumeClaim"]["claimName"])
    (claim,) = claims
    assert k8s_one("PersistentVolumeClaim", claim).data["spec"]["accessModes"] == ["ReadWriteMany"]


# --- KEDA (custom resources: no schema in kubernetes-validate, so checked by shape) ----------------------------------


def _scaled_object() -> K8sDoc:
    (doc,) = k8s_find("ScaledObject")
    return doc


def test_keda_scaled_object_targets_the_worker_deployment() -> None:
    scaled = _scaled_object()
    assert scaled.data["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled.data["spec"]["scaleTargetRef"]
    assert target["name"] == k8s_one("Deployment", WORKER).name
    assert target.get("kind", "Deployment") == "Deployment"
    assert target.get("apiVersion", "apps/v1") == "apps/v1"
    spec = scaled.data["spec"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_keda_watches_the_celery_queue_list(clean_env: None) -> None:
    """The Celery Redis transport's list for the queue is ``<redis_prefix>:<queue_name>`` (global_keyprefix)."""
    settings = Settings()
    config = k8s_one("ConfigMap", CONFIG).data["data"]
    prefix = config.get("REPORTSCORE_REDIS_PREFIX", settings.redis_prefix)
    queue = config.get("REPORTSCORE_QUEUE_NAME", settings.queue_name)
    assert (prefix, queue) == (settings.redis_prefix, settings.queue_name), "the ConfigMap changed the defaults"
    (trigger,) = _scaled_object().data["spec"]["triggers"]
    assert trigger["type"] == "redis"
    metadata = trigger["metadata"]
    assert metadata["listName"] == f"{settings.redis_prefix}:{settings.queue_name}"
    assert isinstance(metadata["listLength"], str), "KEDA metadata values are strings"
    assert int(metadata["listLength"]) > 0
    assert "address" in metadata or "addressFromEnv" in metadata or "authenticationRef" in trigger


def test_keda_trigger_authentication_reads_an_existing_secret_key() -> None:
    (trigger,) = _scaled_object().data["spec"]["triggers"]
    auth = k8s_one("TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth.data["apiVersion"] == "keda.sh/v1alpha1"
    refs = auth.data["spec"]["secretTargetRef"]
    assert "address" in {ref["parameter"] for ref in refs}
    for ref in refs:
        secret = k8s_one("Secret", ref["name"])
        assert ref["key"] in _keys(secret), f"{ref['name']} has no key {ref['key']}"
