"""The service's client CA: it signs controllers' and sensors' client certificates for mutual TLS.

A certificate names the one credential it was issued to (``CREDENTIAL_URI_PREFIX`` + the credential's
id, as its only URI SAN); the TLS layer admits only certificates this CA signed, and each request's
bearer credential must be the one its connection's certificate names (docs/security.md). The client
makes its key pair and sends a CSR, so no private key of a client ever reaches the service.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vigil.clock import utcnow

CA_KEY_FILE = "client-ca.key"
CA_CERT_FILE = "client-ca.crt"
CREDENTIAL_URI_PREFIX = "urn:vigil:credential:"
# The modes of --client-certs: off (no client certificates), optional (a certificate the client presents
# must be this CA's and bound to the request's credential), required (cluster and sensor credentials
# are refused without one).
MODES = ("off", "optional", "required")
# A CSR is a few hundred bytes (an RSA-4096 one under 2 KiB): anything far larger is not one.
MAX_CSR_BYTES = 16 * 1024
_CA_LIFETIME = _dt.timedelta(days=3650)
# Clock skew between the service and its clients, so a fresh certificate is valid at once everywhere.
_BACKDATE = _dt.timedelta(minutes=5)


class CsrRejected(ValueError):
    """The CSR cannot be signed; the message says why (and quotes none of it)."""


@dataclass(frozen=True)
class IssuedCertificate:
    pem: str
    serial: str  # hex
    fingerprint_sha256: str  # hex, of the DER
    not_before: _dt.datetime
    not_after: _dt.datetime


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class ClientCA:
    """The CA's key and certificate, kept in the data dir (key mode 0600) and reused on every start."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, cert_path: Path) -> None:
        self._key = key
        self.cert = cert
        self.cert_path = cert_path

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @classmethod
    def load_or_create(cls, data_dir: Path) -> ClientCA:
        key_path, cert_path = data_dir / CA_KEY_FILE, data_dir / CA_CERT_FILE
        if key_path.exists() or cert_path.exists():
            return cls._load(key_path, cert_path)
        data_dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = utcnow()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vigil"),
                # A random part, so two services' CAs never share a name a verifier could confuse.
                x509.NameAttribute(NameOID.COMMON_NAME, f"Vigil client CA {os.urandom(4).hex()}"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert, cert_path)

    @classmethod
    def _load(cls, key_path: Path, cert_path: Path) -> ClientCA:
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError, UnsupportedAlgorithm) as exc:
            raise ValueError(
                f"client CA in {key_path.parent}: {CA_KEY_FILE} and {CA_CERT_FILE} must both be readable PEM "
                f"({type(exc).__name__}); move them away to make a new CA"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise ValueError(f"client CA in {key_path.parent}: {CA_KEY_FILE} is not the key of {CA_CERT_FILE}")
        if key_path.stat().st_mode & 0o077:
            os.chmod(key_path, 0o600)
        return cls(key, cert, cert_path)

    def issue(self, csr_pem: str, credential_id: str, lifetime: _dt.timedelta) -> IssuedCertificate:
        """A client certificate for the CSR's key, bound to ``credential_id``; only the key comes from the CSR."""
        raw = csr_pem.encode("utf-8", "replace")
        if len(raw) > MAX_CSR_BYTES:
            raise CsrRejected(f"the CSR is larger than {MAX_CSR_BYTES} bytes")
        try:
            csr = x509.load_pem_x509_csr(raw)
        except ValueError:
            raise CsrRejected("the CSR is not a PEM certificate signing request") from None
        if not csr.is_signature_valid:
            raise CsrRejected("the CSR's signature does not verify (it was not signed by its own key)")
        public_key = csr.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            if not 2048 <= public_key.key_size <= 8192:
                raise CsrRejected(f"an RSA key must have 2048 to 8192 bits, not {public_key.key_size}")
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if not isinstance(public_key.curve, ec.SECP256R1 | ec.SECP384R1):
                raise CsrRejected(f"an EC key must be on P-256 or P-384, not {public_key.curve.name}")
        elif not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise CsrRejected("the CSR's key must be RSA, EC (P-256, P-384) or Ed25519")
        now = utcnow()
        # The subject and extensions are the CA's, whatever the CSR asked for: the one identity a
        # certificate carries is its credential.
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, credential_id)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(CREDENTIAL_URI_PREFIX + credential_id)]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return IssuedCertificate(
            pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            serial=format(cert.serial_number, "x"),
            fingerprint_sha256=fingerprint(cert.public_bytes(serialization.Encoding.DER)),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )


def bound_credential(cert_pem: str) -> str | None:
    """The credential id a client certificate (already verified by the TLS layer) is bound to."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    for uri in names.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(CREDENTIAL_URI_PREFIX):
            return uri[len(CREDENTIAL_URI_PREFIX) :]
    return None


def server_context(cert_file: Path, key_file: Path, mode: str, ca: ClientCA | None) -> ssl.SSLContext:
    """The listening socket's TLS context: with client certificates on, the handshake fails for a client
    certificate this CA did not sign (or that expired); a client with none still connects (CERT_OPTIONAL)
    so people reach the console and API with tokens, and each request decides what its credential needs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    if mode != "off":
        assert ca is not None
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cadata=ca.cert_pem)
    return ctx
