"""`vigil get`: one listing from a running service, as a table or as JSON.

No command framework here: `vigil.cli.main` runs a plain `vigil get ...` (what scripts call) straight
from its arguments, without typer and the pydantic that typer builds parameters with (a third of the
command's cost). Help, usage errors and any argument form it does not know go to the typer command
(`vigil.cli.root`), so both paths print the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"


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


class ListingError(Exception):
    """No token, or the service refused or could not be reached; ``code`` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def filters(
    resource: Resource,
    cluster: str | None,
    namespace: str | None,
    severity: str | None,
    type_: str | None,
    status: str | None,
) -> dict[str, str | None]:
    """The query parameters the resource's listing takes (None: not given)."""
    if resource is Resource.clusters:
        return {}
    params: dict[str, str | None] = {"cluster": cluster}
    if resource in (Resource.workloads, Resource.pods, Resource.findings):
        params["namespace"] = namespace
    if resource is Resource.workloads:
        params["kind"] = type_
    if resource is Resource.findings:
        params.update(severity=severity, type=type_, status=status)
    return params


def columns(resource: Resource, output: Output) -> list[str]:
    if output is Output.json:
        # A JSON listing prints the rows as they came: building the response models (~0.15 s of
        # CPU) would only slow the scripts that call `-o json`.
        return []
    from vigil.wire.views import LISTINGS

    return list(LISTINGS[resource.value].columns)


def run(
    resource: Resource,
    *,
    cluster: str | None = None,
    namespace: str | None = None,
    severity: str | None = None,
    type_: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    output: Output = Output.table,
    url: str = DEFAULT_URL,
    token: str | None = None,
) -> None:
    """Print every row of the listing (at most ``limit``)."""
    if not token:
        raise ListingError("no API token: pass --token or set VIGIL_TOKEN", 2)
    from vigil.cli_output import print_rows
    from vigil.wire.client import ServiceClient, ServiceError

    params = filters(resource, cluster, namespace, severity, type_, status)
    try:
        with ServiceClient(url, token) as client:
            rows = client.list_all(f"/api/v1/{resource.value}", params, limit)
    except ServiceError as exc:
        raise ListingError(str(exc), 1) from None
    print_rows(rows, columns(resource, output), output.value, resource.value.capitalize())


def report(error: ListingError) -> None:
    # rich only on the way out: a successful `vigil get -o json` never loads it.
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/] {error.message}")


# Each option of the typer command, by every name it answers to, and `run`'s keyword for it.
OPTIONS = {
    "--cluster": "cluster",
    "--namespace": "namespace",
    "-n": "namespace",
    "--severity": "severity",
    "--type": "type_",
    "--status": "status",
    "--limit": "limit",
    "--output": "output",
    "-o": "output",
    "--url": "url",
    "--token": "token",
}


def plain(args: list[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """`run`'s arguments from ``args`` (those after `get`), or None for anything the typer command should
    answer: help, an unknown or incomplete option, a value it would refuse, a missing token."""
    given: dict[str, str] = {}
    resource = None
    rest = iter(args)
    for arg in rest:
        if not arg.startswith("-"):
            if resource is not None or arg not in Resource.__members__:
                return None
            resource = Resource(arg)
            continue
        name, eq, value = arg.partition("=")
        if name not in OPTIONS or (eq and not name.startswith("--")):
            return None
        if not eq:
            value = next(rest, "-")
            if value.startswith("-"):
                return None
        given[OPTIONS[name]] = value
    if resource is None:
        return None
    # As click reads them: an option given wins over its variable, and an empty variable is unset.
    given.setdefault("url", environ.get("VIGIL_URL") or DEFAULT_URL)
    given.setdefault("token", environ.get("VIGIL_TOKEN") or "")
    if not given["token"] or given.get("output", "table") not in Output.__members__:
        return None
    if "limit" in given and not (given["limit"].isdigit() and int(given["limit"]) >= 1):
        return None
    kwargs: dict[str, Any] = dict(given, resource=resource, output=Output(given.get("output", "table")))
    if "limit" in given:
        kwargs["limit"] = int(given["limit"])
    return kwargs


def run_plain(args: list[str], environ: Mapping[str, str]) -> int | None:
    """Run `vigil get` from plain ``args`` and return its exit code; None when they are not plain."""
    kwargs = plain(args, environ)
    if kwargs is None:
        return None
    try:
        run(**kwargs)
    except ListingError as exc:
        report(exc)
        return exc.code
    return 0
