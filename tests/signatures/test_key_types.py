"""Cosign keyed signatures with each key type cosign makes: ECDSA P-256, RSA and Ed25519."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from vigil.devtools.signing import payload
from vigil.signatures.cosign import verify_simple_signing
from vigil.signatures.keys import BadKey, TrustedKey, key_id, load_public_key
from vigil.signatures.outcome import Invalid, Verified

DIGEST = "sha256:" + "ab" * 32
BODY = payload(DIGEST, "registry.example/app")


def _signers() -> list[tuple[str, object, bytes]]:
    p256 = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed = ed25519.Ed25519PrivateKey.generate()
    return [
        ("ecdsa-p256", p256.public_key(), p256.sign(BODY, ec.ECDSA(hashes.SHA256()))),
        ("rsa-pkcs1", rsa_key.public_key(), rsa_key.sign(BODY, padding.PKCS1v15(), hashes.SHA256())),
        (
            "rsa-pss",
            rsa_key.public_key(),
            rsa_key.sign(BODY, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH), hashes.SHA256()),
        ),
        ("ed25519", ed.public_key(), ed.sign(BODY)),
    ]


@pytest.mark.parametrize(("name", "public", "signature"), _signers(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_key_type_verifies_and_a_flipped_byte_rejects(name: str, public: object, signature: bytes) -> None:
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]
    key = TrustedKey(name, load_public_key(pem))
    sig = base64.b64encode(signature).decode()
    assert verify_simple_signing(BODY, sig, DIGEST, (key,)) == Verified(
        by=name, docker_reference="registry.example/app"
    )
    tampered = BODY.replace(b"registry.example", b"registry.exampl3")
    assert verify_simple_signing(tampered, sig, DIGEST, (key,)) == Invalid(
        "the signature does not verify with the accepted keys"
    )
    assert key.key_id == key_id(key.key) and key.key_id.startswith("sha256:")


def test_a_private_key_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(BadKey, match="^a private key, not a public key$"):
        load_public_key(pem)
