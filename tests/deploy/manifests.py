"""Read the deploy files (deploy/) into plain data for the tests: compose, Kubernetes manifests, the Dockerfile."""

from __future__ import annotations

import json
import re
import secrets
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S_DIR = DEPLOY / "k8s"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

KEDA_API_GROUP = "keda.sh/"
# Services of docker-compose.yml that run third-party images; every other service runs the reportscore image.
THIRD_PARTY_SERVICES = frozenset({"redis", "postgres"})

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")
_INTERPOLATION_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?-([^}]*)\}")
_PLACEHOLDER = re.compile(r"change[-_]?me", re.IGNORECASE)
_PROBE_URL = re.compile(r"urlopen\(\s*['\"]http://(?:127\.0\.0\.1|localhost):(\d+)(/[^'\"]*)['\"]")


# --- compose -------------------------------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def compose_services() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    assert isinstance(services, dict)
    return services


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or ``KEY=VALUE`` list form) as a mapping."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def compose_argv(value: str | list[str]) -> list[str]:
    """A compose ``command`` (list, or a string split like a shell would)."""
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def env_example() -> dict[str, str]:
    """deploy/.env.example as a mapping (the values compose would read from deploy/.env)."""
    out: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"deploy/.env.example: not KEY=VALUE: {line!r}"
            out[key.strip()] = value.strip()
    return out


def interpolated_variables() -> set[str]:
    """Every ``${VAR}`` that docker-compose.yml substitutes."""
    return set(_INTERPOLATION.findall(COMPOSE_FILE.read_text(encoding="utf-8")))


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` with the values of ``env``."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in env:
            return env[name]
        default = _INTERPOLATION_DEFAULT.fullmatch(match.group(0))
        assert default, f"{name} has no value in the .env file and no default"
        return default.group(2)

    return _INTERPOLATION.sub(one, value)


def compose_volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """A service's named-volume mounts (short ``name:/path[:mode]`` or long form) as ``(volume, container path)``."""
    mounts: list[tuple[str, str]] = []
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, _, rest = entry.partition(":")
            target = rest.split(":")[0]
        else:
            assert entry.get("type", "volume") == "volume", f"only named volumes are expected: {entry!r}"
            source, target = entry["source"], entry["target"]
        assert not source.startswith((".", "/")), f"a bind mount of the host is not portable: {entry!r}"
        mounts.append((source, target))
    return mounts


def healthcheck_argv(healthcheck: dict[str, Any]) -> list[str] | None:
    """The argv of a compose healthcheck ``test``; None when it is disabled."""
    if healthcheck.get("disable"):
        return None
    test = healthcheck["test"]
    if isinstance(test, str):
        return shlex.split(test)
    kind, *rest = test
    if kind == "CMD":
        return [str(part) for part in rest]
    if kind == "CMD-SHELL":
        return shlex.split(" ".join(rest))
    if kind == "NONE":
        return None
    raise AssertionError(f"unknown healthcheck test form {test!r}")


# --- Kubernetes ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class K8sDoc:
    path: Path
    index: int
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    @property
    def name(self) -> str:
        return str(self.data["metadata"]["name"])

    @property
    def is_keda(self) -> bool:
        return str(self.data["apiVersion"]).startswith(KEDA_API_GROUP)

    @property
    def id(self) -> str:
        return f"{self.path.name}#{self.index}:{self.kind}/{self.name}"


@cache
def k8s_docs() -> tuple[K8sDoc, ...]:
    docs: list[K8sDoc] = []
    for path in sorted(K8S_DIR.glob("*.y*ml")):
        if path == KUSTOMIZATION:  # kustomize's own file, not an object of the cluster
            continue
        for index, data in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if data is not None:
                assert isinstance(data, dict), f"{path.name} document {index} is not a mapping"
                docs.append(K8sDoc(path, index, data))
    return tuple(docs)


@cache
def kustomization() -> dict[str, Any]:
    data = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def k8s_find(kind: str, name: str | None = None) -> list[K8sDoc]:
    return [doc for doc in k8s_docs() if doc.kind == kind and (name is None or doc.name == name)]


def k8s_one(kind: str, name: str) -> K8sDoc:
    found = k8s_find(kind, name)
    assert len(found) == 1, f"expected one {kind}/{name} in deploy/k8s, found {len(found)}"
    return found[0]


def pod_spec(doc: K8sDoc) -> dict[str, Any] | None:
    """The pod spec of a workload (Deployment, Job, ...); None for other kinds."""
    spec = doc.data.get("spec") or {}
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod: dict[str, Any] = template["spec"]
        return pod
    job_template = spec.get("jobTemplate")  # CronJob
    if isinstance(job_template, dict):
        inner: dict[str, Any] = job_template["spec"]["template"]["spec"]
        return inner
    return None


def containers(doc: K8sDoc) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def container_argv(container: dict[str, Any]) -> list[str]:
    """What a container runs: ``command`` + ``args`` (the image has no ENTRYPOINT, so ``args`` alone replace CMD)."""
    return [str(part) for part in [*container.get("command", []), *container.get("args", [])]]


PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


# --- Dockerfile ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Dockerfile:
    instructions: tuple[Instruction, ...] = field(default_factory=tuple)

    def all(self, keyword: str) -> list[str]:
        return [ins.args for ins in self.instructions if ins.keyword == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"the Dockerfile has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            tokens = shlex.split(args)
            if tokens and "=" not in tokens[0]:  # legacy form: ENV KEY value with spaces
                out[tokens[0]] = " ".join(tokens[1:])
                continue
            for token in tokens:
                key, _, value = token.partition("=")
                out[key] = value
        return out

    def cmd(self) -> list[str]:
        return exec_form(self.last("CMD"))

    def healthcheck(self) -> list[str]:
        args = self.last("HEALTHCHECK")
        _, sep, command = args.partition("CMD ")
        assert sep, f"HEALTHCHECK without CMD: {args!r}"
        return exec_form(command)


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not the exec (JSON) form: {args!r}"
    assert all(isinstance(part, str) for part in value)
    return value


@cache
def dockerfile() -> Dockerfile:
    """Instructions with line continuations joined and comments dropped (as Docker's parser does)."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return Dockerfile(tuple(instructions))


def with_real_secrets(values: dict[str, str]) -> dict[str, str]:
    """The values with every template placeholder (``change-me``, ``CHANGE_ME``) replaced as an operator would: a
    new API key where an API key goes, a random URL-safe password elsewhere."""
    from reportscore.security.keys import generate

    def real(name: str, value: str) -> str:
        if not _PLACEHOLDER.search(value):
            return value
        if "API_KEY" in name:
            return generate()
        return _PLACEHOLDER.sub(lambda _: secrets.token_urlsafe(18), value)

    return {name: real(name, value) for name, value in values.items()}


# --- shared ----------------------------------------------------------------------------------------------------------


def http_probe(argv: list[str]) -> tuple[int, str] | None:
    """(port, path) of a ``python -c "...urlopen('http://127.0.0.1:<port><path>'...)"`` probe; None otherwise."""
    if len(argv) != 3 or argv[0] not in ("python", "python3") or argv[1] != "-c":
        return None
    match = _PROBE_URL.search(argv[2])
    assert match, f"a python -c probe that is not an HTTP GET on localhost: {argv[2]!r}"
    return int(match.group(1)), match.group(2)


def deploy_text_files() -> list[Path]:
    """Every text file under deploy/ plus the build context's .dockerignore."""
    files = [path for path in sorted(DEPLOY.rglob("*")) if path.is_file() and path.name != ".env"]
    return [*files, DOCKERIGNORE]
