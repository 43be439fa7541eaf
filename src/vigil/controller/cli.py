"""``vigil controller``: watch a cluster and keep the service's inventory of it exact."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Optional

import typer

from .credentials import ClusterCredential, CredentialError, load_credential, save_credential
from .runner import Controller, ControllerSettings

app = typer.Typer(help="Watch a Kubernetes cluster and send its inventory to the Vigil service.",
                  invoke_without_command=True)
log = logging.getLogger("vigil.controller")


@app.callback(invoke_without_command=True)
def run(
    service: str = typer.Option(..., "--service", envvar="VIGIL_SERVICE_URL", help="The service's base URL"),
    credential_file: Path = typer.Option(Path("/var/lib/vigil/controller-credential.json"), "--credential-file",
                                         envvar="VIGIL_CREDENTIAL_FILE",
                                         help="Holds cluster_id + credential; written (0600) on first registration"),
    registration_token: Optional[str] = typer.Option(None, "--registration-token", envvar="VIGIL_REGISTRATION_TOKEN",
                                                     help="Registers the cluster when the credential file is absent"),
    cluster_name: Optional[str] = typer.Option(None, "--cluster-name", envvar="VIGIL_CLUSTER_NAME"),
    kubeconfig: Optional[Path] = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                                              help="Kubeconfig file (default: in-cluster service account, then ~/.kube/config)"),
    context: Optional[str] = typer.Option(None, "--context", help="Kubeconfig context"),
    service_ca: Optional[Path] = typer.Option(None, "--service-ca", envvar="VIGIL_SERVICE_CA",
                                              help="CA bundle for the service's TLS certificate"),
    heartbeat_interval: float = typer.Option(15.0, "--heartbeat-interval", min=1.0),
    batch_interval: float = typer.Option(1.0, "--batch-interval", min=0.05, help="At most one batch per this many seconds"),
    page_size: int = typer.Option(500, "--page-size", min=1, max=10000),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_gc()
    try:
        asyncio.run(_main(service, credential_file, registration_token, cluster_name, kubeconfig, context,
                          str(service_ca) if service_ca else True,
                          ControllerSettings(batch_interval=batch_interval, heartbeat_interval=heartbeat_interval,
                                             page_size=page_size)))
    except (CredentialError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        pass


def tune_gc() -> None:
    """Collect young objects every 100,000 allocations instead of 700.

    Parsing a list page allocates ~250,000 short-lived objects (freed by reference counting,
    not by the collector); with the default threshold the cyclic collector ran hundreds of
    times per page, and its full passes walked every wire model held: measured on a
    10,000-pod list, list + conversion took 6.0 s of CPU with the default and 2.7 s with this.
    """
    gc.set_threshold(100_000, 50, 100)


async def obtain_credential(service: str, credential_file: Path, registration_token: str | None,
                            cluster_name: str | None, verify: bool | str) -> ClusterCredential:
    from .service_client import register

    cred = load_credential(credential_file)
    if cred is not None:
        log.info("using cluster %s from %s", cred.cluster_id, credential_file)
        return cred
    if not registration_token or not cluster_name:
        raise CredentialError(f"no credential file at {credential_file}: pass --registration-token and --cluster-name "
                              "to register this cluster")
    delay = 1.0
    while True:
        try:
            cred = await register(service, registration_token, cluster_name, verify)
            break
        except Exception as exc:
            from .service_client import ServiceUnavailable

            if not isinstance(exc, ServiceUnavailable):
                raise CredentialError(str(exc)) from None
            log.warning("%s; retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
    save_credential(credential_file, cred)
    log.info("registered cluster %r as %s; credential kept in %s", cluster_name, cred.cluster_id, credential_file)
    return cred


async def _main(service: str, credential_file: Path, registration_token: str | None, cluster_name: str | None,
                kubeconfig: Path | None, context: str | None, verify: bool | str, settings: ControllerSettings) -> None:
    from .kube import KubeApi, load_config
    from .service_client import InventoryService, check_service_url

    check_service_url(service)
    cred = await obtain_credential(service, credential_file, registration_token, cluster_name, verify)
    api = KubeApi(await load_config(kubeconfig, context))
    svc = InventoryService(service, cred, verify=verify)
    try:
        await Controller(api, svc, settings).run()
    finally:
        await api.close()
        await svc.close()
