"""The `vigil` command. Each unit contributes its own sub-commands; this module only mounts them.

It imports no command framework itself: a plain `vigil get` runs without typer (`vigil.cli.get`),
and every other command builds the typer tree with only the unit it runs in.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

# Every sub-command, by the unit that provides it: (name, module, attribute, kind). Only the
# unit a command runs in is imported, so `vigil sensor` on a node does not load the service,
# the controller's Kubernetes client or the catalogers (measured: 132 MB -> 42 MB RSS).
COMMANDS: tuple[tuple[str, str, str, str], ...] = (
    ("up", "vigil.service.cli.serve", "up", "command"),
    ("service", "vigil.service.cli.serve", "service_app", "group"),
    ("token", "vigil.service.cli.serve", "token_app", "group"),
    ("cluster", "vigil.service.cli.serve", "cluster_app", "group"),
    ("controller", "vigil.controller.cli", "app", "group"),
    ("sensor", "vigil.sensor.cli", "app", "group"),
    ("admission", "vigil.admission.cli", "admission", "command"),
    ("scanner", "vigil.scanner.cli", "scanner_app", "group"),
    ("catalog", "vigil.catalog.cli", "app", "unnamed-group"),
    ("scan", "vigil.scanner.cli", "scan", "command"),
    ("sbom", "vigil.scanner.cli", "sbom", "command"),
    ("intel", "vigil.intel.cli", "app", "group"),
    ("trust", "vigil.service.cli.trust", "trust_app", "group"),
    ("policy", "vigil.service.cli.policy", "policy_app", "group"),
    ("image", "vigil.service.cli.check", "image_app", "group"),
    ("alerts", "vigil.service.cli.alerts", "alerts_app", "group"),
    ("credential", "vigil.cli.credential", "credential_app", "group"),
    ("demo", "vigil.devtools.demo_cli", "demo", "command"),
    ("dev", "vigil.devtools.kubeapi.cli", "app", "dev-group"),
)

# The commands of the root itself (`vigil.cli.root`): running one mounts no unit, so `vigil get`
# and `vigil --version` never load the service.
OWN_COMMANDS = ("get", "version")


def build_app(only: str | None = None) -> typer.Typer:
    """The `vigil` command with every sub-command, or with just ``only``'s (none when it names one of ours)."""
    import typer

    from vigil.cli import root
    from vigil.cli.errors import CommandGroup

    app = typer.Typer(
        cls=CommandGroup,
        help="Vigil: runtime security for Kubernetes, with your artifact registry as the source of truth.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    app.callback()(root.callback)
    app.command("get")(root.get)
    app.command("version")(root.version)
    for name, module, attribute, kind in COMMANDS:
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(module), attribute)
        if kind == "command":
            app.command(name)(target)
        elif kind == "group":
            app.add_typer(target, name=name)
        elif kind == "unnamed-group":
            app.add_typer(target)
        else:
            dev = typer.Typer(help="Development tools: throwaway real parts for tests and demos.", no_args_is_help=True)
            dev.add_typer(target, name="kube-api")
            app.add_typer(dev, name=name)
    return app


def _mounted(args: list[str]) -> str | None:
    """Which unit's commands ``args`` need: the one they name, none for ours, every one for help or a typo."""
    first = next((a for a in args if not a.startswith("-")), None)
    if first is None:
        return "version" if "--version" in args else None
    if first in OWN_COMMANDS or any(first == c[0] for c in COMMANDS):
        return first
    return None


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["get"]:
        from vigil.cli import get

        code = get.run_plain(args[1:], os.environ)
        if code is not None:
            sys.exit(code)
    build_app(_mounted(args))()


def __getattr__(name: str):
    # `vigil.cli.app` (tests, documentation tools) is the whole command, built on first use.
    if name == "app":
        return build_app()
    raise AttributeError(name)
