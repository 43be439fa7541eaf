"""``vigil controller``: watch a cluster and keep the service's inventory of it exact."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from ssl import SSLContext
from typing import TYPE_CHECKING

import typer

from vigil.cli_paths import ca_file, input_file, kubeconfig_file, output_file
from vigil.wire.client_certificate import ClientCertificateError, client_identity, tls_context

from .credentials import (
    DEFAULT_ADMISSION_SECRET,
    DEFAULT_SECRET_NAME,
    DEFAULT_SENSOR_SECRET,
    ClusterCredential,
    CredentialError,
    CredentialStore,
    FileCredentialStore,
)
from .runner import Controller, ControllerSettings

if TYPE_CHECKING:
    from .kube import KubeApi

app = typer.Typer(
    help="Watch a Kubernetes cluster and send its inventory to the Vigil service.", invoke_without_command=True
)
log = logging.getLogger("vigil.controller")
DEFAULT_CREDENTIAL_FILE = Path("/var/lib/vigil/controller-credential.json")


@app.callback(invoke_without_command=True)
def run(
    service: str = typer.Option(..., "--service", envvar="VIGIL_SERVICE_URL", help="The service's base URL"),
    credential_file: Path | None = typer.Option(
        None,
        "--credential-file",
        envvar="VIGIL_CREDENTIAL_FILE",
        help=f"Keep the credential (cluster id + secret) in this file, written 0600 on first registration "
        f"[default outside a cluster: {DEFAULT_CREDENTIAL_FILE}]",
    ),
    credential_secret: str | None = typer.Option(
        None,
        "--credential-secret",
        envvar="VIGIL_CREDENTIAL_SECRET",
        help=f"Keep the credential in this Secret [default in a pod: {DEFAULT_SECRET_NAME}]",
    ),
    credential_namespace: str | None = typer.Option(
        None,
        "--credential-namespace",
        envvar="VIGIL_CREDENTIAL_NAMESPACE",
        help="The credential Secret's namespace [default: the pod's, else the kubeconfig context's]",
    ),
    registration_token: str | None = typer.Option(
        None,
        "--registration-token",
        envvar="VIGIL_REGISTRATION_TOKEN",
        help="Registers the cluster when the credential file is absent",
    ),
    cluster_name: str | None = typer.Option(None, "--cluster-name", envvar="VIGIL_CLUSTER_NAME"),
    kubeconfig: Path | None = typer.Option(
        None,
        "--kubeconfig",
        envvar="KUBECONFIG",
        help="Kubeconfig file (default: in-cluster service account, then ~/.kube/config)",
    ),
    context: str | None = typer.Option(None, "--context", help="Kubeconfig context"),
    service_ca: Path | None = typer.Option(
        None, "--service-ca", envvar="VIGIL_SERVICE_CA", help="CA bundle for the service's TLS certificate"
    ),
    client_cert: Path | None = typer.Option(
        None,
        "--client-cert",
        envvar="VIGIL_CLIENT_CERT",
        help="Client certificate for mutual TLS (from `vigil credential certificate`)",
    ),
    client_key: Path | None = typer.Option(
        None, "--client-key", envvar="VIGIL_CLIENT_KEY", help="The private key of --client-cert"
    ),
    sensor_namespace: str | None = typer.Option(
        None,
        "--sensor-namespace",
        envvar="VIGIL_SENSOR_NAMESPACE",
        help="Write the sensors' Secret (cluster id, enrolment credential, service URL) in this namespace",
    ),
    sensor_secret: str = typer.Option(
        DEFAULT_SENSOR_SECRET,
        "--sensor-secret",
        envvar="VIGIL_SENSOR_SECRET",
        help="The sensors' credential Secret (with --sensor-namespace)",
    ),
    admission_namespace: str | None = typer.Option(
        None,
        "--admission-namespace",
        envvar="VIGIL_ADMISSION_NAMESPACE",
        help="Write the admission webhook's Secret (its credential, the cluster id) in this namespace "
        "[default: that of the controller's credential Secret; none when the credential is kept in a file]",
    ),
    admission_secret: str = typer.Option(
        DEFAULT_ADMISSION_SECRET,
        "--admission-secret",
        envvar="VIGIL_ADMISSION_SECRET",
        help="The admission webhook's credential Secret ('' writes none)",
    ),
    heartbeat_interval: float = typer.Option(15.0, "--heartbeat-interval", min=1.0),
    batch_interval: float = typer.Option(
        1.0, "--batch-interval", min=0.05, help="At most one batch per this many seconds"
    ),
    page_size: int = typer.Option(250, "--page-size", min=1, max=10000),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_gc()
    try:
        # Checked first: a kubeconfig or CA that cannot be read would otherwise fail after registering.
        if kubeconfig is not None:
            kubeconfig_file(kubeconfig)
        if credential_file is not None:
            # Registration writes it: a place it cannot be written would only fail after registering.
            if credential_file.exists():
                input_file(credential_file, "--credential-file")
            else:
                output_file(credential_file, "--credential-file")
        if service_ca is not None:
            ca_file(service_ca, "--service-ca")
        place = credential_place(credential_file, credential_secret, credential_namespace, kubeconfig, context)
        admission_ns = admission_namespace or (place.secret[0] if place.secret else None)
        verify = service_trust(service_ca, client_cert, client_key)
        asyncio.run(
            _main(
                service,
                place,
                registration_token,
                cluster_name,
                kubeconfig,
                context,
                verify,
                ControllerSettings(
                    batch_interval=batch_interval, heartbeat_interval=heartbeat_interval, page_size=page_size
                ),
                (sensor_namespace, sensor_secret) if sensor_namespace else None,
                (admission_ns, admission_secret) if admission_ns and admission_secret else None,
            )
        )
    except (CredentialError, ClientCertificateError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


def service_trust(
    service_ca: Path | None, client_cert: Path | None, client_key: Path | None
) -> bool | str | SSLContext:
    """How httpx checks the service (its CA bundle, else the system's) and, with a client certificate,
    the TLS context that also presents it."""
    identity = client_identity(client_cert, client_key)
    if identity is None:
        return str(service_ca) if service_ca else True
    return tls_context(service_ca, identity)


def tune_gc() -> None:
    """Collect young objects every 100,000 allocations instead of 700.

    Parsing a list page allocates ~250,000 short-lived objects (freed by reference counting,
    not by the collector); with the default threshold the cyclic collector ran hundreds of
    times per page, and its full passes walked every wire model held: measured on a
    10,000-pod list, list + conversion took 6.0 s of CPU with the default and 2.7 s with this.
    """
    gc.set_threshold(100_000, 50, 100)


@dataclass(frozen=True)
class CredentialPlace:
    """Where the credential is kept: a file, or a Secret (namespace, name)."""

    file: Path | None = None
    secret: tuple[str, str] | None = None


def credential_place(
    credential_file: Path | None,
    credential_secret: str | None,
    credential_namespace: str | None,
    kubeconfig: Path | None,
    context: str | None = None,
) -> CredentialPlace:
    """A Secret when one is named or the controller runs in a pod; a file when one is named or outside a cluster."""
    from vigil.kube.config import default_namespace, runs_in_cluster

    if credential_file is not None and credential_secret is not None:
        raise CredentialError("give --credential-file or --credential-secret, not both")
    if credential_file is not None:
        return CredentialPlace(file=credential_file)
    if credential_secret is not None or credential_namespace is not None or runs_in_cluster(kubeconfig):
        namespace = credential_namespace or default_namespace(kubeconfig, context)
        return CredentialPlace(secret=(namespace, credential_secret or DEFAULT_SECRET_NAME))
    return CredentialPlace(file=DEFAULT_CREDENTIAL_FILE)


def credential_store(place: CredentialPlace, api: KubeApi | None) -> CredentialStore:
    if place.secret is not None:
        from .credential_secret import SecretCredentialStore

        assert api is not None, "a Secret is kept through the Kubernetes API"
        return SecretCredentialStore(api, *place.secret)
    assert place.file is not None
    return FileCredentialStore(place.file)


async def obtain_credential(
    service: str,
    store: CredentialStore | Path,
    registration_token: str | None,
    cluster_name: str | None,
    verify: bool | str | SSLContext,
) -> ClusterCredential:
    from .service_client import register

    if isinstance(store, Path):
        store = FileCredentialStore(store)
    cred = await store.load()
    if cred is not None:
        log.info("using cluster %s from %s", cred.cluster_id, store.where)
        return cred
    if not registration_token or not cluster_name:
        raise CredentialError(f"{store.absent}: pass --registration-token and --cluster-name to register this cluster")
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
    cred = await store.save(cred)
    log.info("registered cluster %r as %s; credential kept in %s", cluster_name, cred.cluster_id, store.where)
    return cred


async def _issued(what: str, fetch: Callable[[], Awaitable[str]]) -> str:
    """A credential the service issues to the controller for another part (``fetch``), retried while the
    service is unavailable."""
    from .service_client import ServiceRejected, ServiceUnavailable

    delay = 1.0
    while True:
        try:
            return await fetch()
        except ServiceRejected as exc:
            raise CredentialError(f"getting {what}: {exc}") from None
        except ServiceUnavailable as exc:
            log.warning("%s; retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def _publish_admission(
    api: KubeApi, service: str, cred: ClusterCredential, verify: bool | str | SSLContext, where: tuple[str, str]
) -> None:
    """The admission webhook's credential in its Secret. Not fatal: without the webhook (the chart's admission
    off) the controller may lack the RBAC for that Secret, and the inventory must go on."""
    from .admission_secret import publish_admission_secret
    from .service_client import admission_credential

    try:
        token = await _issued("the admission webhook's credential", lambda: admission_credential(service, cred, verify))
        await publish_admission_secret(api, *where, cred.cluster_id, token)
    except CredentialError as exc:
        log.warning("admission webhook credential not written (%s); admission control cannot start without it", exc)


async def _main(
    service: str,
    place: CredentialPlace,
    registration_token: str | None,
    cluster_name: str | None,
    kubeconfig: Path | None,
    context: str | None,
    verify: bool | str | SSLContext,
    settings: ControllerSettings,
    sensor_secret: tuple[str, str] | None = None,
    admission_secret: tuple[str, str] | None = None,
) -> None:
    from .kube import KubeApi, load_config
    from .service_client import InventoryService, check_service_url

    check_service_url(service)
    # A credential file needs no Kubernetes API, so a missing one is reported before the kubeconfig is read.
    api = KubeApi(await load_config(kubeconfig, context)) if place.secret is not None else None
    try:
        cred = await obtain_credential(service, credential_store(place, api), registration_token, cluster_name, verify)
        if api is None:
            api = KubeApi(await load_config(kubeconfig, context))
        if sensor_secret is not None:
            from .sensor_secret import publish_sensor_secret
            from .service_client import sensor_enrolment

            enrolment = await _issued(
                "the sensors' enrolment credential", lambda: sensor_enrolment(service, cred, verify)
            )
            await publish_sensor_secret(api, *sensor_secret, cred.cluster_id, enrolment, service)
        if admission_secret is not None:
            await _publish_admission(api, service, cred, verify, admission_secret)
        svc = InventoryService(service, cred, verify=verify)
        try:
            await Controller(api, svc, settings).run()
        finally:
            await svc.close()
    finally:
        if api is not None:
            await api.close()
