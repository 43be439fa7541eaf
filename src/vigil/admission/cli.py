"""``vigil admission``: the cluster's admission webhook server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vigil.cli_paths import BadPath, ca_file, input_file, kubeconfig_file

if TYPE_CHECKING:
    from vigil.admission.certs import FileCertificate, IssuedCertificate
    from vigil.registry.config import RegistryConfig

log = logging.getLogger("vigil.admission")


def _host_port(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {listen!r} must be HOST:PORT with a port of 1-65535")
    return host.strip("[]") or "0.0.0.0", int(port)


def admission(
    service: str = typer.Option(..., "--service", envvar="VIGIL_SERVICE_URL", help="The service's base URL"),
    cluster_id: str = typer.Option(..., "--cluster-id", envvar="VIGIL_CLUSTER_ID", help="This cluster's id"),
    credential_file: Path = typer.Option(
        ...,
        "--credential-file",
        envvar="VIGIL_CREDENTIAL_FILE",
        help="File holding the admission credential (re-read at each use, so a rotated Secret is picked up)",
    ),
    service_ca: Path | None = typer.Option(
        None, "--service-ca", envvar="VIGIL_SERVICE_CA", help="CA bundle for the service's TLS certificate"
    ),
    listen: str = typer.Option("0.0.0.0:8443", "--listen", help="HOST:PORT to serve HTTPS on"),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", help="Serving certificate (PEM), reloaded when it changes"
    ),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="Its private key (PEM)"),
    tls_ca_cert: Path | None = typer.Option(
        None,
        "--tls-ca-cert",
        help="Instead of --tls-cert: a CA certificate to issue a short-lived serving certificate from",
    ),
    tls_ca_key: Path | None = typer.Option(None, "--tls-ca-key", help="That CA's private key (PEM, EC)"),
    tls_host: list[str] = typer.Option(
        [], "--tls-host", help="DNS name or IP the issued certificate is for (repeatable; with --tls-ca-cert)"
    ),
    registry_config: Path | None = typer.Option(
        None,
        "--registry-config",
        envvar="VIGIL_REGISTRY_CONFIG",
        help="Registry settings and credentials for tags the service has not resolved yet (YAML)",
    ),
    cold_budget: float = typer.Option(
        0.8,
        "--cold-budget",
        min=0.0,
        max=4.0,
        help="Seconds a review may wait for the trusted registry when the service's facts do not cover an image; "
        "keep it below the webhook's timeoutSeconds",
    ),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", envvar="KUBECONFIG", help="For namespace labels (default: in-cluster service account)"
    ),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Serve the cluster's admission webhooks over HTTPS: /validate, /validate/fail-closed and /mutate,
    deciding from the service's feed."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from vigil.admission.certs import CertificateError, FileCertificate, IssuedCertificate
    from vigil.registry.config import RegistryConfig, RegistryConfigError
    from vigil.wire.client_certificate import ClientCertificateError, read_bearer, tls_context

    try:
        host, port = _host_port(listen)
        # Read again at each use (a rotated Secret); here only so that a bad file is refused before serving.
        read_bearer(input_file(credential_file, "--credential-file"))
        if service_ca is not None:
            ca_file(service_ca, "--service-ca")
        if kubeconfig is not None:
            kubeconfig_file(kubeconfig)
        if registry_config is not None:
            input_file(registry_config, "--registry-config")
        registries = RegistryConfig.load(registry_config)
        certificate: FileCertificate | IssuedCertificate
        if tls_cert is not None or tls_key is not None:
            if tls_cert is None or tls_key is None or tls_ca_cert is not None:
                raise ValueError("give --tls-cert and --tls-key together, or --tls-ca-cert and --tls-ca-key instead")
            certificate = FileCertificate.open(input_file(tls_cert, "--tls-cert"), input_file(tls_key, "--tls-key"))
        elif tls_ca_cert is not None and tls_ca_key is not None:
            certificate = IssuedCertificate.open(
                input_file(tls_ca_cert, "--tls-ca-cert"), input_file(tls_ca_key, "--tls-ca-key"), tls_host
            )
        else:
            raise ValueError("a serving certificate is needed: --tls-cert/--tls-key, or --tls-ca-cert/--tls-ca-key")
        verify = tls_context(service_ca, None)
        asyncio.run(
            serve(
                service,
                cluster_id,
                credential_file,
                verify,
                host,
                port,
                certificate,
                registries,
                cold_budget,
                kubeconfig,
            )
        )
    except (BadPath, CertificateError, RegistryConfigError, ClientCertificateError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


async def serve(
    service: str,
    cluster_id: str,
    credential_file: Path,
    verify: ssl.SSLContext,
    host: str,
    port: int,
    certificate: FileCertificate | IssuedCertificate,
    registries: RegistryConfig,
    cold_budget: float,
    kubeconfig: Path | None,
) -> None:
    import uvicorn

    from vigil.admission.knowledge import Knowledge
    from vigil.admission.namespaces import NamespaceLabels
    from vigil.admission.registry import ColdResolver
    from vigil.admission.server import Webhook, build_app
    from vigil.admission.service_link import Credential, ServiceLink
    from vigil.registry.client import RegistryClient

    knowledge = Knowledge()
    link = ServiceLink(service, cluster_id, Credential(credential_file), knowledge, verify)
    try:
        namespaces: NamespaceLabels | None = await NamespaceLabels.connect(kubeconfig)
    except Exception as exc:  # noqa: BLE001 - without the API, namespace selectors see only the name label
        log.warning("no Kubernetes API for namespace labels", extra={"error": str(exc)[:300]})
        namespaces = None
    resolver = ColdResolver(RegistryClient(registries))
    webhook = Webhook(cluster_id, knowledge, link, resolver, namespaces, cold_budget)
    config = uvicorn.Config(
        build_app(webhook), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    config.load()
    config.ssl = certificate.context  # the one context certificate renewals reload in place
    server = uvicorn.Server(config)
    tasks = [
        asyncio.create_task(link.follow_feed()),
        asyncio.create_task(link.send_decisions()),
        asyncio.create_task(certificate.keep_current()),
    ]
    try:
        await server.serve()
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await link.close()
        resolver.close()
        if namespaces is not None:
            await namespaces.close()
