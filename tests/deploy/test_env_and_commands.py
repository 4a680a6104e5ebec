"""Across deploy/: every REPORTSCORE_* variable is a Settings field, and every command run is a tested one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reportscore.settings import Settings
from tests.deploy.commands import TESTED_COMMANDS, TESTED_HTTP_PROBES, THIRD_PARTY_PROGRAMS, command_key
from tests.deploy.manifests import (
    PROBES,
    ROOT,
    THIRD_PARTY_SERVICES,
    compose_argv,
    compose_environment,
    compose_services,
    container_argv,
    containers,
    deploy_text_files,
    dockerfile,
    healthcheck_argv,
    http_probe,
    k8s_docs,
    resolve_port,
)

PREFIX = "REPORTSCORE_"
FIELDS = {f"{PREFIX}{name.upper()}" for name in Settings.model_fields}
_VARIABLE = re.compile(r"\bREPORTSCORE_[A-Z0-9_]+\b")


def _set_variables() -> dict[str, set[str]]:
    """Every environment variable name deploy/ sets, mapped to where."""
    found: dict[str, set[str]] = {}

    def add(name: str, where: str) -> None:
        found.setdefault(name, set()).add(where)

    for name, service in compose_services().items():
        for key in compose_environment(service):
            add(key, f"docker-compose.yml:{name}")
    for key in dockerfile().env():
        add(key, "Dockerfile ENV")
    for doc in k8s_docs():
        if doc.kind in ("ConfigMap", "Secret"):
            for key in (*doc.data.get("data", {}), *doc.data.get("stringData", {})):
                add(key, doc.id)
        for container in containers(doc):
            for env in container.get("env", []):
                add(env["name"], doc.id)
    return found


def test_every_reportscore_variable_set_in_deploy_is_a_settings_field() -> None:
    variables = {name: where for name, where in _set_variables().items() if name.startswith(PREFIX)}
    assert {"REPORTSCORE_DATABASE_URL", "REPORTSCORE_BROKER_URL", "REPORTSCORE_FLOWER_BASIC_AUTH"} <= set(variables)
    unknown = {name: sorted(where) for name, where in variables.items() if name not in FIELDS}
    assert not unknown, f"not fields of reportscore.settings.Settings: {unknown}"


def test_envfrom_sources_hold_only_settings() -> None:
    """ConfigMaps and Secrets loaded whole with envFrom must not smuggle in other variables."""
    referenced = {
        source[kind]["name"]
        for doc in k8s_docs()
        for container in containers(doc)
        for source in container.get("envFrom", [])
        for kind in ("configMapRef", "secretRef")
        if kind in source
    }
    for doc in k8s_docs():
        if doc.kind in ("ConfigMap", "Secret") and doc.name in referenced:
            keys = {*doc.data.get("data", {}), *doc.data.get("stringData", {})}
            assert keys <= FIELDS, f"{doc.id}: {sorted(keys - FIELDS)}"


@pytest.mark.parametrize("path", deploy_text_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_reportscore_variable_named_in_deploy_files_is_a_settings_field(path: Path) -> None:
    """Also comments and docs: a README that names a variable that does not exist misleads the operator."""
    named = set(_VARIABLE.findall(path.read_text(encoding="utf-8")))
    assert named <= FIELDS, f"{path.relative_to(ROOT)} names unknown settings: {sorted(named - FIELDS)}"


def _check_reportscore_argv(argv: list[str], where: str) -> str | None:
    """The tested command an argv of the reportscore image runs (None for an HTTP probe); fails otherwise."""
    assert argv, f"{where}: empty command"
    if argv[0] == "reportscore":
        key = command_key(argv)
        assert key in TESTED_COMMANDS, f"{where}: {key!r} is not in tests/deploy/commands.py TESTED_COMMANDS"
        return key
    probe = http_probe(argv)
    assert probe is not None, f"{where}: {argv!r} is neither a reportscore command nor an HTTP probe"
    assert probe in TESTED_HTTP_PROBES, f"{where}: untested HTTP probe {probe}"
    return None


def test_compose_runs_only_tested_commands() -> None:
    used: set[str] = set()
    for name, service in compose_services().items():
        argvs = [compose_argv(service["command"])] if "command" in service else []
        if "healthcheck" in service and (argv := healthcheck_argv(service["healthcheck"])) is not None:
            argvs.append(argv)
        for argv in argvs:
            if name in THIRD_PARTY_SERVICES:
                assert argv[0] in THIRD_PARTY_PROGRAMS, f"docker-compose.yml:{name}: {argv!r}"
            elif (key := _check_reportscore_argv(argv, f"docker-compose.yml:{name}")) is not None:
                used.add(key)
        if name not in THIRD_PARTY_SERVICES:
            assert "command" in service, f"{name}: say which process it is instead of relying on the image's CMD"
    assert used == TESTED_COMMANDS, f"compose does not run {sorted(TESTED_COMMANDS - used)}"


def test_kubernetes_runs_only_tested_commands() -> None:
    used: set[str] = set()
    for doc in k8s_docs():
        for container in containers(doc):
            where = f"{doc.id}:{container['name']}"
            argv = container_argv(container)
            assert argv, f"{where}: say which process it is instead of relying on the image's CMD"
            if (key := _check_reportscore_argv(argv, where)) is not None:
                used.add(key)
            for probe in PROBES:
                handler = container.get(probe)
                if handler is None:
                    continue
                if "exec" in handler:
                    if (key := _check_reportscore_argv(handler["exec"]["command"], f"{where}:{probe}")) is not None:
                        used.add(key)
                elif "httpGet" in handler:
                    target = (resolve_port(container, handler["httpGet"]["port"]), handler["httpGet"]["path"])
                    assert target in TESTED_HTTP_PROBES, f"{where}:{probe}: untested HTTP probe {target}"
                else:
                    pytest.fail(f"{where}:{probe}: use an exec or httpGet probe")
            for hook in container.get("lifecycle", {}).values():
                assert "exec" not in hook, f"{where}: lifecycle exec hooks run untested commands; use sleep"
    assert used == TESTED_COMMANDS, f"Kubernetes does not run {sorted(TESTED_COMMANDS - used)}"


def test_dockerfile_runs_only_tested_commands() -> None:
    assert _check_reportscore_argv(dockerfile().cmd(), "Dockerfile CMD") == "reportscore serve"
    assert _check_reportscore_argv(dockerfile().healthcheck(), "Dockerfile HEALTHCHECK") is None
