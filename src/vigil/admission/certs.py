"""The webhook's serving certificate, renewed without a restart (I/O).

Two sources: certificate files (the chart's Secret or cert-manager's), read again whenever they
change; or a CA's certificate and key, from which the webhook issues its own short-lived serving
certificate and issues the next one at two thirds of its lifetime. Either way the one SSLContext
the server listens with is reloaded in place: connections already open keep their handshake,
new ones get the new certificate, so rotation costs no downtime.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import ipaddress
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

ISSUED_LIFETIME = _dt.timedelta(hours=24)
FILE_CHECK_INTERVAL = 10.0


class CertificateError(ValueError):
    """A certificate or key that cannot be used; names the file."""


def new_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _load(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise CertificateError(f"{exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(f"--tls-cert {cert} / --tls-key {key}: cannot use them: {exc}") from None


def _load_pem(cert_pem: bytes, key_pem: bytes, ctx: ssl.SSLContext) -> None:
    # load_cert_chain reads files only: hand it a private temporary directory.
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        key.touch(0o600)
        key.write_bytes(key_pem)
        cert.write_bytes(cert_pem)
        ctx.load_cert_chain(cert, key)


@dataclass
class FileCertificate:
    """Serving certificate and key from files, reloaded when either changes."""

    cert: Path
    key: Path
    context: ssl.SSLContext
    stamp: tuple[int, int, int, int] = (0, 0, 0, 0)

    @classmethod
    def open(cls, cert: Path, key: Path) -> FileCertificate:
        ctx = new_context()
        _load(ctx, cert, key)
        made = cls(cert, key, ctx)
        made.stamp = made._stamp()
        return made

    def _stamp(self) -> tuple[int, int, int, int]:
        # Inode too: a mounted Secret is updated by swapping a symlink, not by writing the file.
        c, k = os.stat(self.cert), os.stat(self.key)
        return (c.st_mtime_ns, c.st_ino, k.st_mtime_ns, k.st_ino)

    def reload_if_changed(self) -> bool:
        """Load the files again if either changed since the last load; False when nothing changed or they
        cannot be used yet (a Secret being rewritten is briefly half there: the old one keeps serving)."""
        try:
            now = self._stamp()
            if now == self.stamp:
                return False
            _load(self.context, self.cert, self.key)
        except (OSError, CertificateError) as exc:
            log.warning("serving certificate not reloaded", extra={"error": str(exc)})
            return False
        self.stamp = now
        log.info("serving certificate reloaded", extra={"cert": str(self.cert)})
        return True

    async def keep_current(self, interval: float = FILE_CHECK_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()


def _sans(hosts: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for host in hosts:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


@dataclass
class IssuedCertificate:
    """A serving certificate this webhook issues itself from a CA, renewed at 2/3 of its lifetime."""

    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    hosts: list[str]
    context: ssl.SSLContext
    lifetime: _dt.timedelta = ISSUED_LIFETIME
    issued_at: _dt.datetime | None = None
    not_after: _dt.datetime | None = None

    @classmethod
    def open(
        cls, ca_cert: Path, ca_key: Path, hosts: list[str], lifetime: _dt.timedelta = ISSUED_LIFETIME
    ) -> IssuedCertificate:
        try:
            cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise CertificateError(f"--tls-ca-cert {ca_cert}: not a PEM certificate: {exc}") from None
        try:
            key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise CertificateError(f"--tls-ca-key {ca_key}: not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"--tls-ca-key {ca_key}: must be an EC key (the chart makes P-256)")
        if not hosts:
            raise CertificateError("--tls-host: at least one DNS name or IP address is needed for the certificate")
        issued = cls(cert, key, hosts, new_context(), lifetime)
        issued.renew()
        return issued

    def renew(self) -> None:
        now = _dt.datetime.now(_dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = min(now + self.lifetime, self.ca_cert.not_valid_after_utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.hosts[0][:64])]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(_sans(self.hosts)), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _load_pem(cert.public_bytes(serialization.Encoding.PEM), key_pem, self.context)
        self.issued_at, self.not_after = now, not_after
        log.info("serving certificate issued", extra={"not_after": not_after.isoformat()})

    def renew_at(self) -> _dt.datetime:
        """Two thirds into the certificate's life: a failed renewal has a third left to be retried."""
        if self.issued_at is None or self.not_after is None:
            raise RuntimeError("no certificate issued yet")
        return self.issued_at + (self.not_after - self.issued_at) * 2 / 3

    async def keep_current(self) -> None:
        while True:
            wait = (self.renew_at() - _dt.datetime.now(_dt.UTC)).total_seconds()
            await asyncio.sleep(max(wait, 1.0))
            try:
                self.renew()
            except (ValueError, ssl.SSLError, OSError) as exc:
                log.error("serving certificate not renewed; retrying in a minute", extra={"error": str(exc)})
                await asyncio.sleep(60.0)
