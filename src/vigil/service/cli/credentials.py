"""`vigil cluster credentials|rotate|revoke`: a cluster's credentials through a running service's API
(an admin token); secrets are shown once, on rotation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from vigil.cli_output import Output, print_rows
from vigil.wire.client import ServiceClient, ServiceError
from vigil.wire.views import CredentialInfo, RotatedCredential

err = Console(stderr=True)
T = TypeVar("T")

COLUMNS = ["id", "name", "kind", "node", "state", "created_at", "expires_at", "revoked_at"]


def _call(url: str, token: str | None, work: Callable[[ServiceClient], T]) -> T:
    if not token:
        err.print("[red]error:[/] no API token: pass --token or set VIGIL_TOKEN (an admin token)")
        raise typer.Exit(2)
    try:
        with ServiceClient(url, token) as client:
            return work(client)
    except ServiceError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def show_credentials(url: str, token: str | None, cluster_id: str, output: Output) -> None:
    body = _call(url, token, lambda c: c.request("GET", f"/api/v1/clusters/{cluster_id}/credentials"))
    rows = [CredentialInfo.model_validate(item).model_dump(mode="json") for item in body["items"]]
    print_rows(rows, COLUMNS, output, f"Credentials of cluster {cluster_id}")


def rotate(url: str, token: str | None, cluster_id: str, overlap_seconds: int) -> None:
    body = _call(
        url,
        token,
        lambda c: c.request(
            "POST", f"/api/v1/clusters/{cluster_id}/credentials/rotate", json={"overlap_seconds": overlap_seconds}
        ),
    )
    rotated = RotatedCredential.model_validate(body)
    err.print(
        f"credential {rotated.id} for cluster {cluster_id}; the earlier ones work until "
        f"{rotated.previous_valid_until.isoformat()}. The secret is shown once:",
        highlight=False,
        soft_wrap=True,
    )
    typer.echo(rotated.credential)


def revoke(url: str, token: str | None, cluster_id: str, credential_id: str) -> None:
    _call(url, token, lambda c: c.request("POST", f"/api/v1/clusters/{cluster_id}/credentials/{credential_id}/revoke"))
    err.print(f"revoked credential {credential_id} of cluster {cluster_id}", highlight=False)
