"""One name per setting across units, and docs/settings.md lists every one (the real commands' options)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

import click
import typer

from vigil.catalog.limits import ScanLimits
from vigil.catalog.limits import env_name as scan_limit_env
from vigil.cli import build_app

SETTINGS_DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
# Old names still read beside the current one; each is documented as deprecated.
DEPRECATED = {"VIGIL_SERVICE": "VIGIL_SERVICE_URL"}
# The same flag for two different settings: an admin API token, and the test API server's own token.
DIFFERENT_SETTINGS = {"--token"}
SERVICE_SETTINGS = Path(__file__).resolve().parents[1] / "src" / "vigil" / "service" / "settings.py"


def environment_only() -> set[str]:
    """Variables read with no flag (limits an operator rarely changes): the service's settings' own,
    and the limits per image scan every scanning command reads (``ScanLimits.from_env``)."""
    read = r'(?:env_int|env_positive|os\.environ\.get)\("(VIGIL_[A-Z0-9_]+)"'
    service = set(re.findall(read, SERVICE_SETTINGS.read_text()))
    return service | {scan_limit_env(f.name) for f in fields(ScanLimits)}


def options() -> list[tuple[str, str, list[str]]]:
    """(command path, long flag, environment variables) for every option that reads the environment."""
    found = []

    def walk(command: click.Command, path: str) -> None:
        for param in command.params:
            if param.envvar:
                names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
                found.append((path, param.opts[0], names))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(build_app()), "vigil")
    return found


def documented() -> dict[str, set[str]]:
    """Environment variable -> the flags on its row of the table."""
    rows: dict[str, set[str]] = {}
    for line in SETTINGS_DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        env_cell, flag_cell = line.split("|")[1:3]
        flags = set(re.findall(r"`(--[a-z-]+)`", flag_cell))
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", env_cell):
            rows[name] = flags
    return rows


def test_a_setting_has_one_variable_in_every_unit():
    by_flag: dict[str, set[str]] = defaultdict(set)
    for _, flag, names in options():
        by_flag[flag].add(names[0])
    shared = {flag: names for flag, names in by_flag.items() if len(names) > 1}
    assert set(shared) == DIFFERENT_SETTINGS, shared
    assert by_flag["--service"] == {"VIGIL_SERVICE_URL"}
    assert by_flag["--service-ca"] == {"VIGIL_SERVICE_CA"}
    assert by_flag["--credential-file"] == {"VIGIL_CREDENTIAL_FILE"}
    aliases = {name: names[0] for _, _, names in options() for name in names[1:]}
    assert aliases == DEPRECATED


def test_settings_doc_lists_every_variable_with_its_flag():
    rows = documented()
    for path, flag, names in options():
        for name in names[:1]:
            assert name in rows, f"{path} {flag}: {name} is not in docs/settings.md"
            assert flag in rows[name], f"{path}: {name}'s row does not name {flag}"
    real = {name for _, _, names in options() for name in names}
    assert set(rows) - real - environment_only() == set(), "docs/settings.md names variables nothing reads"
    assert environment_only() <= set(rows), "a variable the service's settings read is not in docs/settings.md"
    text = SETTINGS_DOC.read_text()
    for old in DEPRECATED:
        assert f"old name `{old}`, deprecated" in text
