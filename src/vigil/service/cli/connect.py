"""`vigil cluster install`: connect a cluster through a running service's API (an admin token).

The service makes the cluster (pending until its controller reports) and a registration token bound
to it; the token goes to a file of mode 0600 that the printed Helm command reads, never onto a
command line.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from vigil.cli_paths import ca_file, output_file
from vigil.service.analysis.install import connect_plan, token_file_name
from vigil.wire.client import ServiceClient, ServiceError
from vigil.wire.views import IssuedRegistrationToken

err = Console(stderr=True)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, also when the file existed before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def issue(url: str, token: str, name: str, ttl: timedelta, max_uses: int | None) -> IssuedRegistrationToken:
    body: dict[str, object] = {"cluster_name": name, "ttl_seconds": int(ttl.total_seconds())}
    if max_uses is not None:
        body["max_uses"] = max_uses
    with ServiceClient(url, token) as client:
        return IssuedRegistrationToken.model_validate(
            client.request("POST", "/api/v1/clusters/registration-tokens", json=body)
        )


def connect_cluster(
    url: str,
    token: str | None,
    name: str,
    ttl: timedelta,
    max_uses: int | None,
    service_url: str | None,
    token_file: Path | None,
    service_ca: Path | None,
    manifest: bool,
) -> None:
    if not token:
        err.print("[red]error:[/] no API token: pass --token or set VIGIL_TOKEN (an admin token)")
        raise typer.Exit(2)
    path = token_file or Path(token_file_name(name))
    # Before the service makes the cluster: a token that cannot be written, or a CA the chart cannot read,
    # would leave a pending cluster and a token shown nowhere.
    if not manifest:
        output_file(path, "--token-file")
    if service_ca is not None:
        ca_file(service_ca, "--service-ca")
    try:
        issued = issue(url, token, name, ttl, max_uses)
    except ServiceError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    shown = str(path) if path.is_absolute() or str(path).startswith(".") else f"./{path}"
    plan = connect_plan(name, (service_url or url).rstrip("/"), issued.token, shown,
                        str(service_ca) if service_ca else None)  # fmt: skip
    expires = issued.expires_at.isoformat()
    err.print(f"cluster {name} ({issued.cluster_id}) is pending until its controller reports; "
              f"registration token {issued.id} expires {expires}", highlight=False, soft_wrap=True)  # fmt: skip
    if manifest:
        err.print("The manifest below holds the token in a Secret: redirect it to a private file.", highlight=False)
        typer.echo(plan.manifest, nl=False)
        return
    write_private(path, issued.token)
    err.print(f"token written to {path} (mode 0600); run:", highlight=False)
    typer.echo(plan.helm)
