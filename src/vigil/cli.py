"""The `vigil` command. Each unit contributes its own sub-commands; this module only mounts them."""

from __future__ import annotations

import importlib
import sys
from enum import Enum

import typer

from vigil import __version__

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
    ("scanner", "vigil.scanner.cli", "scanner_app", "group"),
    ("catalog", "vigil.catalog.cli", "app", "unnamed-group"),
    ("scan", "vigil.scanner.cli", "scan", "command"),
    ("sbom", "vigil.scanner.cli", "sbom", "command"),
    ("intel", "vigil.intel.cli", "app", "group"),
    ("trust", "vigil.service.cli.trust", "trust_app", "group"),
    ("image", "vigil.service.cli.check", "image_app", "group"),
    ("alerts", "vigil.service.cli.alerts", "alerts_app", "group"),
    ("demo", "vigil.devtools.demo_cli", "demo", "command"),
    ("dev", "vigil.devtools.kubeapi.cli", "app", "dev-group"),
)

# The commands this module defines itself: running one mounts no unit, so `vigil get` and
# `vigil --version` stay a client's cost (httpx, typer) and never load the service.
OWN_COMMANDS = ("get", "version")


def build_app(only: str | None = None) -> typer.Typer:
    """The `vigil` command with every sub-command, or with just ``only``'s (none when it names one of ours)."""
    app = typer.Typer(
        help="Vigil: runtime security for Kubernetes, with your artifact registry as the source of truth.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    app.command("get")(get)
    app.command("version")(version)
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


class Output(str, Enum):
    table = "table"
    json = "json"


class Resource(str, Enum):
    clusters = "clusters"
    nodes = "nodes"
    workloads = "workloads"
    pods = "pods"
    images = "images"
    findings = "findings"


def _print_version(value: bool) -> None:
    # Eager, so `vigil --version` answers before click asks for a sub-command.
    if value:
        typer.echo(__version__)
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit", is_eager=True, callback=_print_version),
) -> None:
    pass


def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _error(message: str, code: int) -> typer.Exit:
    # rich only on the way out: a successful `vigil get -o json` never loads it.
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def get(
    resource: Resource = typer.Argument(..., help="What to list"),
    cluster: str = typer.Option(None, "--cluster", help="Cluster id"),
    namespace: str = typer.Option(None, "--namespace", "-n"),
    severity: str = typer.Option(None, "--severity", help="findings: e.g. critical,high"),
    type_: str = typer.Option(None, "--type", help="findings: e.g. tag_moved; workloads: kind"),
    status: str = typer.Option(None, "--status", help="findings: open, resolved, suppressed"),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many rows [default: all]"),
    output: Output = typer.Option(Output.table, "--output", "-o"),
    url: str = typer.Option("http://127.0.0.1:8080", "--url", envvar="VIGIL_URL", help="The service's URL"),
    token: str = typer.Option(None, "--token", envvar="VIGIL_TOKEN", help="API token (admin or viewer)"),
) -> None:
    """List clusters, nodes, workloads, pods, images or findings from a running service."""
    if not token:
        raise _error("no API token: pass --token or set VIGIL_TOKEN", 2)
    from vigil.cli_output import print_rows
    from vigil.wire.client import ServiceClient, ServiceError

    params: dict = {"cluster": cluster}
    if resource in (Resource.workloads, Resource.pods, Resource.findings):
        params["namespace"] = namespace
    if resource is Resource.workloads:
        params["kind"] = type_
    if resource is Resource.findings:
        params.update(severity=severity, type=type_, status=status)
    if resource is Resource.clusters:
        params = {}
    try:
        with ServiceClient(url, token) as client:
            rows = client.list_all(f"/api/v1/{resource.value}", params, limit)
    except ServiceError as exc:
        raise _error(str(exc), 1)
    print_rows(rows, _columns(resource, output), output.value, resource.value.capitalize())


def _columns(resource: Resource, output: Output) -> list[str]:
    if output is Output.json:
        # A JSON listing prints the rows as they came: building the response models (~0.15 s of
        # CPU) would only slow the scripts that call `-o json`.
        return []
    from vigil.wire.views import LISTINGS

    return list(LISTINGS[resource.value].columns)


def _mounted(args: list[str]) -> str | None:
    """Which unit's commands ``args`` need: the one they name, none for ours, every one for help or a typo."""
    first = next((a for a in args if not a.startswith("-")), None)
    if first is None:
        return "version" if "--version" in args else None
    if first in OWN_COMMANDS or any(first == c[0] for c in COMMANDS):
        return first
    return None


def main() -> None:
    build_app(_mounted(sys.argv[1:]))()


def __getattr__(name: str):
    # `vigil.cli.app` (tests, documentation tools) is the whole command, built on first use.
    if name == "app":
        return build_app()
    raise AttributeError(name)


if __name__ == "__main__":
    main()
