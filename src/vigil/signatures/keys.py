"""Public keys and raw signature checks: ECDSA (P-256/P-384), RSA (PKCS#1 v1.5 or PSS), Ed25519."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

MAX_KEY_BYTES = 64 * 1024


class BadKey(ValueError):
    """A key file that is not a supported public key (the message names why)."""


@dataclass(frozen=True)
class TrustedKey:
    """An accepted public key and the name outcomes report it by."""

    name: str
    key: PublicKey

    @property
    def key_id(self) -> str:
        return key_id(self.key)


def key_id(key: PublicKey) -> str:
    """`sha256:` of the DER SubjectPublicKeyInfo: stable whatever the PEM's wrapping."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_public_key(data: bytes) -> PublicKey:
    """A PEM (or DER) public key; cosign's `.pub` and connaisseur's `.key` files are PEM public keys."""
    if len(data) > MAX_KEY_BYTES:
        raise BadKey(f"key is larger than {MAX_KEY_BYTES} bytes")
    try:
        if b"-----BEGIN" in data:
            if b"PRIVATE KEY" in data:
                raise BadKey("a private key, not a public key")
            loaded = serialization.load_pem_public_key(data)
        else:
            loaded = serialization.load_der_public_key(data)
    except BadKey:
        raise
    except (ValueError, TypeError) as e:
        raise BadKey(f"not a PEM or DER public key ({e})") from None
    if is_supported(loaded):
        return loaded
    raise BadKey(f"unsupported key type {type(loaded).__name__} (ECDSA, RSA or Ed25519)")


def is_supported(key: object) -> TypeGuard[PublicKey]:
    return isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey)


def signature_ok(key: PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is `key`'s over `message`, with the hash cosign and sigstore use for that
    key: SHA-256 for P-256 and RSA, SHA-384 for P-384, SHA-512 for P-521, none for Ed25519."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            digest: hashes.HashAlgorithm = {
                "secp384r1": hashes.SHA384(),
                "secp521r1": hashes.SHA512(),
            }.get(key.curve.name, hashes.SHA256())
            key.verify(signature, message, ec.ECDSA(digest))
            return True
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return True
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(signature, message, pss, hashes.SHA256())
            return True
    except (InvalidSignature, ValueError):
        return False


def signed_by(keys: list[TrustedKey] | tuple[TrustedKey, ...], signature: bytes, message: bytes) -> TrustedKey | None:
    """The first accepted key that made `signature` over `message`."""
    for k in keys:
        if signature_ok(k.key, signature, message):
            return k
    return None
