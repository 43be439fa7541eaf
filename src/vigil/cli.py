"""The `vigil` command. Each unit contributes its own sub-commands; this module only mounts them."""

from __future__ import annotations

from enum import Enum

import typer
from rich.console import Console

from vigil import __version__
from vigil.cli_output import print_rows
from vigil.catalog.cli import app as catalog_app
from vigil.controller.cli import app as controller_app
from vigil.intel.cli import app as intel_app
from vigil.devtools.kubeapi.cli import app as kube_api_app
from vigil.sensor.cli import app as sensor_app
from vigil.service.cli import cluster_app, service_app, token_app, up
from vigil.service.analysis.check_cli import image_app
from vigil.service.analysis.trust_cli import trust_app
from vigil.wire.client import ServiceClient, ServiceError

app = typer.Typer(
    help="Vigil: runtime security for Kubernetes, with your artifact registry as the source of truth.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


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


COLUMNS = {
    "clusters": ["id", "name", "controller.status", "last_seen_at", "nodes", "pods"],
    "nodes": ["cluster_id", "name", "kernel_version", "os_image", "container_runtime", "architecture", "sensor_disabled"],
    "workloads": ["cluster_id", "namespace", "kind", "name", "pods"],
    "pods": ["cluster_id", "namespace", "name", "node_name", "phase", "workload.kind", "workload.name"],
    "images": ["id", "ref", "usage.containers", "usage.workloads", "usage.clusters"],
    "findings": ["id", "severity", "type", "status", "subject", "cluster_id", "namespace", "last_seen_at"],
}


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


app.command("up")(up)
app.add_typer(service_app, name="service")
app.add_typer(token_app, name="token")
app.add_typer(cluster_app, name="cluster")
app.add_typer(sensor_app, name="sensor")
app.add_typer(catalog_app)
app.add_typer(controller_app, name="controller")
app.add_typer(intel_app, name="intel")
app.add_typer(trust_app, name="trust")
app.add_typer(image_app, name="image")
dev_app = typer.Typer(help="Development tools: throwaway real parts for tests and demos.", no_args_is_help=True)
dev_app.add_typer(kube_api_app, name="kube-api")
app.add_typer(dev_app, name="dev")


@app.command("get")
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
        err.print("[red]error:[/] no API token: pass --token or set VIGIL_TOKEN")
        raise typer.Exit(2)
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
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1)
    print_rows(rows, COLUMNS[resource.value], output.value, resource.value.capitalize())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
