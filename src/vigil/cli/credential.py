"""`vigil credential certificate`: a client certificate for a controller's or sensor's credential."""

from __future__ import annotations

from pathlib import Path

import typer

from vigil.cli_paths import output_file
from vigil.wire.client_certificate import ClientCertificateError, ClientIdentity, obtain_certificate, read_bearer

credential_app = typer.Typer(help="A controller's or sensor's own credential.", no_args_is_help=True)


@credential_app.command("certificate")
def certificate(
    service: str = typer.Option(..., "--service", envvar="VIGIL_SERVICE_URL", help="The service's base URL (https)"),
    credential_file: Path = typer.Option(
        ...,
        "--credential-file",
        envvar="VIGIL_CREDENTIAL_FILE",
        help="The credential: a controller's JSON credential file or a file holding the bare token",
    ),
    client_cert: Path = typer.Option(
        ..., "--client-cert", envvar="VIGIL_CLIENT_CERT", help="Where the certificate is written (PEM)"
    ),
    client_key: Path = typer.Option(
        ..., "--client-key", envvar="VIGIL_CLIENT_KEY", help="Where the new private key is written (PEM, mode 0600)"
    ),
    service_ca: Path | None = typer.Option(
        None, "--service-ca", envvar="VIGIL_SERVICE_CA", help="CA bundle for the service's TLS certificate"
    ),
) -> None:
    """Make a key here, have the service's CA sign a client certificate for it bound to the credential,
    and write both. When the files already hold a certificate and key, they are presented to renew."""
    if not service.lower().startswith("https://"):
        typer.echo(f"error: --service {service}: client certificates need https://", err=True)
        raise typer.Exit(2)
    # Both are written after the service answered: a place they cannot go is found before asking it.
    output_file(client_cert, "--client-cert", make_dir=True)
    output_file(client_key, "--client-key", make_dir=True)
    try:
        issued = obtain_certificate(
            service, read_bearer(credential_file), ClientIdentity(client_cert, client_key), service_ca
        )
    except ClientCertificateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"client certificate for credential {issued.credential_id} written to {client_cert} (key {client_key}, "
        f"mode 0600), valid until {issued.not_after}"
    )
