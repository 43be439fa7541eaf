"""`--help` of every `vigil` command and sub-command renders (rich markup in help texts included)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from vigil.cli import build_app

runner = CliRunner()


def _paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        found.extend(_paths(sub, (*prefix, name)))
    return found


COMMAND_PATHS = _paths(typer.main.get_command(build_app()))


def test_the_walk_finds_every_unit():
    tops = {p[0] for p in COMMAND_PATHS if p}
    assert {"scan", "sbom", "catalog", "intel", "trust", "token", "cluster", "image", "dev", "get"} <= tops
    assert len(COMMAND_PATHS) > 40


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "vigil")
def test_help_renders(path):
    result = runner.invoke(build_app(), [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Usage:" in result.output and "Traceback" not in result.output
