"""The `vigil` command's own part as typer commands: `--version`, `version` and `get` (its work is in
`vigil.cli.get`)."""

from __future__ import annotations

import typer

from vigil import __version__
from vigil.cli.get import DEFAULT_URL, ListingError, Output, Resource, report, run


def _print_version(value: bool) -> None:
    # Eager, so `vigil --version` answers before click asks for a sub-command.
    if value:
        typer.echo(__version__)
        raise typer.Exit()


def callback(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit", is_eager=True, callback=_print_version
    ),
) -> None:
    pass


def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def get(
    resource: Resource = typer.Argument(..., help="What to list"),
    cluster: str = typer.Option(None, "--cluster", help="Cluster id or name"),
    namespace: str = typer.Option(None, "--namespace", "-n"),
    severity: str = typer.Option(None, "--severity", help="findings: e.g. critical,high"),
    type_: str = typer.Option(None, "--type", help="findings: e.g. tag_moved; workloads: kind"),
    status: str = typer.Option(None, "--status", help="findings: open, resolved, suppressed"),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many rows [default: all]"),
    output: Output = typer.Option(Output.table, "--output", "-o"),
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="VIGIL_URL", help="The service's URL"),
    token: str = typer.Option(None, "--token", envvar="VIGIL_TOKEN", help="API token (admin or viewer)"),
) -> None:
    """List clusters, nodes, workloads, pods, images or findings from a running service."""
    try:
        run(
            resource,
            cluster=cluster,
            namespace=namespace,
            severity=severity,
            type_=type_,
            status=status,
            limit=limit,
            output=output,
            url=url,
            token=token,
        )
    except ListingError as exc:
        report(exc)
        raise typer.Exit(exc.code) from None
