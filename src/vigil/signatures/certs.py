"""Fulcio certificates: the chain to a trusted root's CA at the signing time, and the identity a
certificate names (subject from the SAN, OIDC issuer from Fulcio's extension)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from vigil.signatures.trustroot import TrustedRoot

# Fulcio's OIDC issuer extensions: v1 holds the raw string, v2 a DER UTF8String.
ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
# Fulcio's otherName SAN for usernames (type-id of the identity).
OTHERNAME_SAN = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


@dataclass(frozen=True)
class IdentityRule:
    """An accepted keyless identity: the issuer and the subject, each exact or a full-match pattern."""

    issuer: str | None = None
    subject: str | None = None
    issuer_pattern: str | None = None
    subject_pattern: str | None = None

    def __post_init__(self) -> None:
        if (self.issuer is None) == (self.issuer_pattern is None):
            raise ValueError("an identity names exactly one of issuer and issuer_pattern")
        if (self.subject is None) == (self.subject_pattern is None):
            raise ValueError("an identity names exactly one of subject and subject_pattern")
        for p in (self.issuer_pattern, self.subject_pattern):
            if p is not None:
                re.compile(p)

    def accepts(self, issuer: str, subject: str) -> bool:
        ok_issuer = (
            issuer == self.issuer if self.issuer is not None else bool(re.fullmatch(self.issuer_pattern or "", issuer))
        )
        ok_subject = (
            subject == self.subject
            if self.subject is not None
            else bool(re.fullmatch(self.subject_pattern or "", subject))
        )
        return ok_issuer and ok_subject

    def describe(self) -> str:
        issuer = self.issuer if self.issuer is not None else f"/{self.issuer_pattern}/"
        subject = self.subject if self.subject is not None else f"/{self.subject_pattern}/"
        return f"{issuer}={subject}"


def _der_utf8(value: bytes) -> str | None:
    # A short-form DER UTF8String: tag 0x0c, one length byte.
    if len(value) >= 2 and value[0] == 0x0C and value[1] == len(value) - 2:
        return value[2:].decode("utf-8", "replace")
    return None


def issuer_of(cert: x509.Certificate) -> str | None:
    for ext in cert.extensions:
        if ext.oid == ISSUER_V2 and isinstance(ext.value, x509.UnrecognizedExtension):
            return _der_utf8(ext.value.value)
    for ext in cert.extensions:
        if ext.oid == ISSUER_V1 and isinstance(ext.value, x509.UnrecognizedExtension):
            return ext.value.value.decode("utf-8", "replace")
    return None


def subject_of(cert: x509.Certificate) -> str | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        return uri
    for email in san.get_values_for_type(x509.RFC822Name):
        return email
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OTHERNAME_SAN:
            # The value is an explicitly tagged UTF8String: [0] { UTF8String }.
            v = other.value
            if len(v) >= 2 and v[0] == 0xA0:
                return _der_utf8(v[2:])
            return _der_utf8(v)
    return None


def _valid_at(cert: x509.Certificate, t: datetime) -> bool:
    return cert.not_valid_before_utc <= t <= cert.not_valid_after_utc


def chain_error(leaf: x509.Certificate, root: TrustedRoot, t: datetime) -> str | None:
    """None when `leaf` chains to one of the trusted root's CAs with every certificate valid at `t`
    (the signing time, not now: Fulcio certificates live ten minutes); else why not."""
    t = t.astimezone(UTC)
    if not _valid_at(leaf, t):
        return (
            f"the certificate was not valid at the signing time {t.isoformat()} "
            f"(valid {leaf.not_valid_before_utc.isoformat()} to {leaf.not_valid_after_utc.isoformat()})"
        )
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            return "the certificate is not for code signing"
    except x509.ExtensionNotFound:
        return "the certificate is not for code signing"
    for ca in root.certificate_authorities:
        if not ca.valid.contains(t):
            continue
        issued = leaf
        ok = True
        for issuer in ca.chain:
            try:
                issued.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                ok = False
                break
            if not _valid_at(issuer, t):
                ok = False
                break
            issued = issuer
        if ok:
            return None
    return "the certificate does not chain to a Fulcio root of the trusted root at the signing time"
