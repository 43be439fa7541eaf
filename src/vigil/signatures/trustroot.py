"""Sigstore trusted root documents (`application/vnd.dev.sigstore.trustedroot+json;version=0.1`):
the Fulcio certificate authorities and the Rekor logs' keys, each with its validity window."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from vigil.signatures.keys import PublicKey, is_supported

MAX_TRUSTED_ROOT_BYTES = 4 * 1024 * 1024


class BadTrustedRoot(ValueError):
    """A trusted root document Vigil cannot use; the message names the field."""


@dataclass(frozen=True)
class Window:
    start: datetime | None
    end: datetime | None

    def contains(self, t: datetime) -> bool:
        return (self.start is None or self.start <= t) and (self.end is None or t <= self.end)


@dataclass(frozen=True)
class CertificateAuthority:
    """A Fulcio chain, leaf-most first, root last."""

    uri: str
    chain: tuple[x509.Certificate, ...]
    valid: Window


@dataclass(frozen=True)
class Log:
    """A transparency log: its key, the key id entries name it by, and when the key was valid."""

    base_url: str
    log_id: bytes
    key: PublicKey
    valid: Window


@dataclass(frozen=True)
class TrustedRoot:
    certificate_authorities: tuple[CertificateAuthority, ...]
    tlogs: tuple[Log, ...]
    raw: bytes

    def log(self, log_id: bytes) -> Log | None:
        for log in self.tlogs:
            if log.log_id == log_id:
                return log
        return None


def _time(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadTrustedRoot(f"{field}: expected an RFC 3339 time")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadTrustedRoot(f"{field}: {value!r} is not an RFC 3339 time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _window(doc: Any, field: str) -> Window:
    if not isinstance(doc, dict):
        return Window(None, None)
    return Window(_time(doc.get("start"), f"{field}.start"), _time(doc.get("end"), f"{field}.end"))


def _b64(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise BadTrustedRoot(f"{field}: expected base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadTrustedRoot(f"{field}: not base64") from None


def parse_trusted_root(data: bytes) -> TrustedRoot:
    if len(data) > MAX_TRUSTED_ROOT_BYTES:
        raise BadTrustedRoot(f"larger than {MAX_TRUSTED_ROOT_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadTrustedRoot(f"not JSON ({e})") from None
    if not isinstance(doc, dict) or not str(doc.get("mediaType", "")).startswith(
        "application/vnd.dev.sigstore.trustedroot"
    ):
        raise BadTrustedRoot("mediaType: not a Sigstore trusted root")
    cas: list[CertificateAuthority] = []
    for i, ca in enumerate(doc.get("certificateAuthorities") or []):
        field = f"certificateAuthorities[{i}]"
        certs = ((ca or {}).get("certChain") or {}).get("certificates") or []
        chain: list[x509.Certificate] = []
        for j, c in enumerate(certs):
            der = _b64((c or {}).get("rawBytes"), f"{field}.certChain.certificates[{j}].rawBytes")
            try:
                chain.append(x509.load_der_x509_certificate(der))
            except ValueError:
                raise BadTrustedRoot(f"{field}.certChain.certificates[{j}]: not a DER certificate") from None
        if not chain:
            raise BadTrustedRoot(f"{field}.certChain: no certificates")
        cas.append(
            CertificateAuthority(str(ca.get("uri", "")), tuple(chain), _window(ca.get("validFor"), f"{field}.validFor"))
        )
    logs: list[Log] = []
    for i, tl in enumerate(doc.get("tlogs") or []):
        field = f"tlogs[{i}]"
        pk = (tl or {}).get("publicKey") or {}
        der = _b64(pk.get("rawBytes"), f"{field}.publicKey.rawBytes")
        try:
            key = serialization.load_der_public_key(der)
        except ValueError:
            raise BadTrustedRoot(f"{field}.publicKey.rawBytes: not a DER public key") from None
        if not is_supported(key):
            raise BadTrustedRoot(f"{field}.publicKey: unsupported key type")
        log_id = _b64(((tl or {}).get("logId") or {}).get("keyId"), f"{field}.logId.keyId")
        logs.append(
            Log(str(tl.get("baseUrl", "")), log_id, key, _window(pk.get("validFor"), f"{field}.publicKey.validFor"))
        )
    return TrustedRoot(tuple(cas), tuple(logs), data)


def public_good_root() -> bytes:
    """The public-good trusted root the sigstore package ships: read from the installed package, never
    fetched, so as current as that package."""
    from importlib import resources

    return (
        resources.files("sigstore") / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"
    ).read_bytes()
