"""`vigil alerts add|list|remove|test|dead-letters`: alert outputs, through a running service's API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

import typer
from rich.console import Console
from rich.markup import escape

from vigil.cli_output import print_rows
from vigil.service.analysis.alerts.events import DEFAULT_EVENTS, EVENT_KINDS
from vigil.wire.client import ServiceClient, ServiceError

alerts_app = typer.Typer(help="Alert outputs (webhook, Slack, syslog) of a running service.", no_args_is_help=True)
err = Console(stderr=True)

Url = typer.Option("http://127.0.0.1:8080", "--url", envvar="VIGIL_URL", help="The service's URL")
Token = typer.Option(None, "--token", envvar="VIGIL_TOKEN", help="An admin API token")
COLUMNS = ["id", "name", "kind", "threshold", "events", "settings", "cursor", "dead_letters"]
DEAD_COLUMNS = ["id", "output_name", "event_id", "finding_id", "event", "attempts", "failed_at", "error"]


class Kind(str, Enum):
    webhook = "webhook"
    slack = "slack"
    syslog = "syslog"


class Output(str, Enum):
    table = "table"
    json = "json"


def _client(url: str, token: str | None) -> ServiceClient:
    if not token:
        err.print("[red]error:[/] no API token: pass --token or set VIGIL_TOKEN")
        raise typer.Exit(2)
    return ServiceClient(url, token)


@contextmanager
def _service(url: str, token: str | None) -> Iterator[ServiceClient]:
    """A client of the service; an error the service answers with ends the command with exit code 1."""
    with _client(url, token) as client:
        try:
            yield client
        except ServiceError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


def _resolve(client: ServiceClient, ref: str) -> dict:
    """An output by id or name."""
    items = client.request("GET", "/api/v1/alerts/outputs")["items"]
    for o in items:
        if ref == str(o["id"]) or ref == o["name"]:
            return o
    err.print(f"[red]error:[/] OUTPUT: no alert output with id or name {ref!r}")
    raise typer.Exit(1)


def _on_output(url: str, token: str | None, ref: str, method: str, action: str) -> dict:
    """Send ``method`` to the output named by ``ref`` (``action`` after its path); the output, as listed."""
    with _service(url, token) as client:
        o = _resolve(client, ref)
        client.request(method, f"/api/v1/alerts/outputs/{o['id']}{action}")
    return o


@alerts_app.command("add")
def add(
    name: str = typer.Argument(..., help="A name for the output: lower-case letters, digits, . _ -"),
    kind: Kind = typer.Option(..., "--kind", help="webhook, slack or syslog"),
    target: str = typer.Option(
        None,
        "--target",
        envvar="VIGIL_ALERT_TARGET",
        help="webhook/slack: the URL to POST to (env keeps it out of `ps`)",
    ),
    secret: str = typer.Option(
        None,
        "--secret",
        envvar="VIGIL_ALERT_SECRET",
        help="webhook: HMAC signing secret (16+ chars) [default: generated, shown once]",
    ),
    address: str = typer.Option(None, "--address", help="syslog: host:port of the receiver"),
    protocol: str = typer.Option("udp", "--protocol", help="syslog: udp or tcp"),
    facility: str = typer.Option("local0", "--facility", help="syslog: facility name, e.g. local0, auth"),
    threshold: str = typer.Option(
        "medium", "--threshold", help="Least severe finding sent: critical, high, medium or low"
    ),
    events: str = typer.Option(
        ",".join(DEFAULT_EVENTS), "--events", help=f"Comma-separated, of: {', '.join(EVENT_KINDS)}"
    ),
    allow_insecure_http: bool = typer.Option(
        False, "--allow-insecure-http", help="Permit plain http to a non-loopback host"
    ),
    url: str = Url,
    token: str = Token,
) -> None:
    """Add an alert output; the service validates it and names any bad field."""
    body: dict = {
        "name": name,
        "kind": kind.value,
        "threshold": threshold,
        "events": [e.strip() for e in events.split(",") if e.strip()],
    }
    if kind is Kind.syslog:
        body.update(address=address, protocol=protocol, facility=facility)
    else:
        body.update(url=target, allow_insecure_http=allow_insecure_http)
        if kind is Kind.webhook and secret:
            body["secret"] = secret
    body = {k: v for k, v in body.items() if v is not None}
    with _service(url, token) as client:
        created = client.request("POST", "/api/v1/alerts/outputs", json=body)
    typer.echo(
        f"added alert output {created['id']} ({created['name']}, {created['kind']}, threshold {created['threshold']})"
    )
    if created.get("secret"):
        err.print("Signing secret (shown once; configure it in the receiver):")
        typer.echo(created["secret"])


@alerts_app.command("list")
def list_outputs(
    output: Output = typer.Option(Output.table, "--output", "-o"), url: str = Url, token: str = Token
) -> None:
    """List alert outputs (secrets masked)."""
    with _service(url, token) as client:
        items = client.request("GET", "/api/v1/alerts/outputs")["items"]
    print_rows(items, COLUMNS, output.value, "Alert outputs")


@alerts_app.command("remove")
def remove(
    ref: str = typer.Argument(..., metavar="OUTPUT", help="Id or name"), url: str = Url, token: str = Token
) -> None:
    """Remove an alert output (its dead letters stay)."""
    o = _on_output(url, token, ref, "DELETE", "")
    typer.echo(f"removed alert output {o['id']} ({o['name']})")


@alerts_app.command("test")
def test(
    ref: str = typer.Argument(..., metavar="OUTPUT", help="Id or name"), url: str = Url, token: str = Token
) -> None:
    """Send a test alert (event 'test', event_id 0) to an output now."""
    o = _on_output(url, token, ref, "POST", "/test")
    typer.echo(f"test alert delivered to {o['name']}")


@alerts_app.command("dead-letters")
def dead_letters(
    ref: str = typer.Option(None, "--output-name", help="Only this output (id or name)"),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    output: Output = typer.Option(Output.table, "--output", "-o"),
    url: str = Url,
    token: str = Token,
) -> None:
    """Alerts that were not delivered after every retry, newest first."""
    with _service(url, token) as client:
        params: dict = {"limit": limit}
        if ref:
            params["output"] = _resolve(client, ref)["id"]
        items = client.request("GET", "/api/v1/alerts/dead-letters", params=params)["items"]
    print_rows(items, DEAD_COLUMNS, output.value, "Dead letters")
