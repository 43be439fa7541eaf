"""Client certificates for mutual TLS with the service: the request and answer of
``POST /api/v1/client-certificate``, and what a controller or sensor does with them.

The key pair is made here, on the client; only a CSR goes to the service, which signs a certificate
bound to the credential that asked (docs/security.md).
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import Field

from vigil.wire.views import View

CERTIFICATE_PATH = "/api/v1/client-certificate"
MAX_CSR_CHARS = 16 * 1024


class ClientCertificateRequest(View):
    csr: str = Field(
        min_length=1,
        max_length=MAX_CSR_CHARS,
        description="PEM certificate signing request for the client's own key; its subject is ignored",
    )


class IssuedClientCertificate(View):
    credential_id: str = Field(description="the credential the certificate is bound to (its URI SAN)")
    certificate: str = Field(description="PEM client certificate signed by the service's client CA")
    ca: str = Field(description="PEM certificate of the service's client CA")
    serial: str
    fingerprint_sha256: str
    not_after: str


class ClientCertificateError(RuntimeError):
    """The certificate could not be obtained or used; the message says why (never a secret)."""


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate and its key, as files (the key mode 0600)."""

    cert: Path
    key: Path


def client_identity(cert: Path | None, key: Path | None) -> ClientIdentity | None:
    if (cert is None) != (key is None):
        raise ClientCertificateError("give --client-cert and --client-key together")
    return ClientIdentity(cert, key) if cert is not None and key is not None else None


def tls_context(service_ca: Path | str | None, identity: ClientIdentity | None) -> ssl.SSLContext:
    """A client TLS context trusting ``service_ca`` (else the system's CAs), presenting ``identity``."""
    try:
        ctx = ssl.create_default_context(cafile=str(service_ca) if service_ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise ClientCertificateError(f"--service-ca {service_ca}: not a readable PEM CA bundle ({exc})") from None
    if identity is not None:
        try:
            ctx.load_cert_chain(str(identity.cert), str(identity.key))
        except (OSError, ssl.SSLError) as exc:
            raise ClientCertificateError(
                f"--client-cert {identity.cert} / --client-key {identity.key}: not a readable PEM certificate "
                f"and its key ({exc})"
            ) from None
    return ctx


def read_bearer(path: Path) -> str:
    """The credential's secret from a file: a controller's JSON credential file, or a bare token (a
    mounted Secret, a sensor's file)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ClientCertificateError(f"cannot read credential file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ClientCertificateError(f"credential file {path} is not UTF-8 text") from None
    if text.startswith("{"):
        try:
            text = str(json.loads(text)["credential"]).strip()
        except (ValueError, KeyError, TypeError):
            raise ClientCertificateError(f"credential file {path} is JSON without a 'credential' string") from None
    if not text or any(c.isspace() for c in text):
        raise ClientCertificateError(f"credential file {path} must hold one token without whitespace")
    return text


def new_key_and_csr() -> tuple[bytes, str]:
    """(PEM private key, PEM CSR): a P-256 key that never leaves this machine, and its signing request."""
    # Imported here: a sensor that only presents a certificate does not load the X.509 machinery.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vigil client")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a file of ``mode`` in the same directory, renamed over it,
    so a reader never sees half a key or a key readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def obtain_certificate(
    service: str,
    credential: str,
    out: ClientIdentity,
    service_ca: Path | None = None,
    timeout: float = 30.0,
) -> IssuedClientCertificate:
    """Make a key, have the service sign a certificate for it bound to ``credential``, and write both.

    When ``out`` already holds a certificate and key they are presented on the request (renewal: the
    service issues a credential's later certificates only to a caller presenting a current one).
    """
    current = out if out.cert.exists() and out.key.exists() else None
    ctx = tls_context(service_ca, current)
    key_pem, csr_pem = new_key_and_csr()
    url = service.rstrip("/") + CERTIFICATE_PATH
    try:
        resp = httpx.post(
            url,
            json={"csr": csr_pem},
            headers={"Authorization": f"Bearer {credential}", "User-Agent": "vigil-credential"},
            verify=ctx,
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise ClientCertificateError(f"POST {url}: {type(exc).__name__}: {exc}") from None
    if resp.status_code != 201:
        try:
            body = resp.json()
            why = f"{body.get('error', '')}: {body.get('detail', '')}"
        except (ValueError, AttributeError):
            why = "the answer is not the service's JSON"
        raise ClientCertificateError(f"POST {url}: {resp.status_code} {why}")
    issued = IssuedClientCertificate.model_validate(resp.json())
    _replace(out.key, key_pem, 0o600)
    _replace(out.cert, issued.certificate.encode("ascii"), 0o644)
    return issued
