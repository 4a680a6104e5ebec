"""``--help`` of every command prints its help text as written, and each option backed by a setting names its
environment variable and the setting's real default."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from reportscore.cli import app
from reportscore.settings import Settings
from tests.servers import REPORTSCORE, clean_env


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the tree, as (words after ``reportscore``, click command)."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _squeezed(text: str) -> str:
    """Without any whitespace: help is re-wrapped to the terminal (and may break lines at hyphens)."""
    return "".join(text.split())


def _env_setting(param: Any) -> str:
    """The setting an option reads from its environment variable."""
    assert isinstance(param.envvar, str), param.envvar
    assert param.envvar.startswith("REPORTSCORE_"), param.envvar
    name = param.envvar.removeprefix("REPORTSCORE_").lower()
    assert name in Settings.model_fields, f"{param.envvar} is not a setting"
    return name


def test_every_command_is_walked() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"serve", "worker", "local-cluster", "models register", "keys create", "config docs"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "reportscore" for p, _ in COMMANDS])
def test_help_prints_every_text_as_written_with_env_vars_and_defaults(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    shown = _squeezed(result.output)
    assert _squeezed(command.help or "") in shown, f"the help of `{' '.join(path)}` is not printed as written"
    for param in command.params:
        if getattr(param, "hidden", False):
            assert param.opts[0] not in result.output
            continue
        assert _squeezed(param.help or "") in shown, f"{param.opts}: help text not printed as written"
        if param.name in Settings.model_fields:
            assert param.envvar, f"{param.opts} sets the setting {param.name} but does not read its variable"
        if not param.envvar:
            continue
        setting = _env_setting(param)
        assert f"envvar:{param.envvar}" in shown, f"{param.opts}: its environment variable is not shown"
        default = Settings.model_fields[setting].get_default(call_default_factory=True)
        assert param.default == default, f"{param.opts}: default {param.default!r}, the setting's is {default!r}"
        if not isinstance(default, bool):  # a flag is off unless given
            assert f"default:{default}" in shown, f"{param.opts}: its default is not shown"


def test_serve_help_shows_the_bind_address_variable_and_default() -> None:
    result = subprocess.run(
        [REPORTSCORE, "serve", "--help"],
        env=clean_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _squeezed("--host <str> Address to bind. [env var: REPORTSCORE_HOST; default: 127.0.0.1]") in _squeezed(
        result.stdout
    )
    assert "--api-processes" in result.stdout
    assert "REPORTSCORE_API_PROCESSES" in result.stdout
    assert "--workers" not in result.stdout  # the deprecated spelling still works but is not advertised
