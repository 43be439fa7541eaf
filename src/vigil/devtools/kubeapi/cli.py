"""``vigil dev kube-api``: serve a folder of Kubernetes objects over the Kubernetes API."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
from pathlib import Path

import typer

from .loader import LoadError, load_directory
from .server import KubeAPIServer

app = typer.Typer(
    help="A test Kubernetes API server (list, watch, 410 Gone, bookmarks) for development and tests.",
    no_args_is_help=False,
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def serve(
    port: int = typer.Option(6443, "--port", help="TCP port on the loopback interface"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default: plain HTTP)"),
    load: Path | None = typer.Option(None, "--load", help="Folder of JSON/YAML objects to serve"),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="VIGIL_KUBEAPI_TOKEN",
        help="Bearer token clients must send (generated and printed if absent)",
    ),
    history: int = typer.Option(1000, "--history", help="Events kept for watches/continue; older is 410 Gone"),
    bookmark_interval: float = typer.Option(60.0, "--bookmark-interval", help="Seconds between watch BOOKMARKs"),
    plain_http: bool = typer.Option(False, "--plain-http", help="Serve plain HTTP (kubectl then sends no token)"),
    kubeconfig: Path | None = typer.Option(None, "--write-kubeconfig", help="Write a kubeconfig for this server here"),
    service_endpoint: list[str] = typer.Option(
        [],
        "--service-endpoint",
        help="NAMESPACE/NAME=https://HOST:PORT: where admission webhooks with clientConfig.service NAMESPACE/NAME "
        "are reached (their certificate must be valid for NAME.NAMESPACE.svc); repeatable",
    ),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Loading and serving tens of thousands of objects allocates millions of dicts; with the
    # default threshold (700) the cyclic collector's passes over them took most of the time.
    gc.set_threshold(100_000, 50, 100)
    generated = token is None
    endpoints: dict[str, str] = {}
    for item in service_endpoint:
        key, sep, url = item.partition("=")
        if not sep or key.count("/") != 1 or not url.startswith("https://"):
            typer.echo(f"error: --service-endpoint {item!r}: expected NAMESPACE/NAME=https://HOST:PORT", err=True)
            raise typer.Exit(2)
        endpoints[key] = url
    server = KubeAPIServer(
        token=token or secrets.token_urlsafe(24),
        host=host,
        port=port,
        history_size=history,
        bookmark_interval=bookmark_interval,
        tls=not plain_http,
        service_endpoints=endpoints,
    )
    if load is not None:
        try:
            count = load_directory(server.store, load)
        except LoadError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"loaded {count} objects from {load}")

    async def main() -> None:
        await server.start_async()
        typer.echo(f"serving the Kubernetes API on {server.url}")
        if generated:
            typer.echo(f"token: {server.token}")
        if kubeconfig is not None:
            server.write_kubeconfig(kubeconfig)
            typer.echo(f"kubeconfig: {kubeconfig}")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop_async()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
