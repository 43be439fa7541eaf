"""Sign images as cosign does, for tests and demos: a simple-signing payload under the
`sha256-<hex>.sig` tag, or the same signature manifest as an OCI 1.1 referrer of the image."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vigil.devtools.oci import canonical_json, sha256
from vigil.model.image import ImageRef, parse_image_ref
from vigil.registry import RegistryClient
from vigil.registry import media_types as mt
from vigil.registry.upload import RegistryWriter

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def payload(digest: str, reference: str) -> bytes:
    doc = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def signature_manifest(body: bytes, signature: bytes, *, subject: tuple[str, int] | None = None) -> tuple[bytes, bytes]:
    """(manifest, config) of a cosign signature manifest with one simple-signing layer; with
    `subject` (digest, size of the image manifest) an OCI 1.1 referrer of that image."""
    config = b"{}"
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json" if subject else mt.OCI_CONFIG,
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": SIMPLE_SIGNING,
                "digest": sha256(body),
                "size": len(body),
                "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()},
            }
        ],
    }
    if subject:
        doc["artifactType"] = SIMPLE_SIGNING
        doc["subject"] = {"mediaType": mt.OCI_MANIFEST, "digest": subject[0], "size": subject[1]}
    return canonical_json(doc), config


def sign(
    client: RegistryClient,
    image: ImageRef | str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    referrer_size: int | None = None,
    corrupt: bool = False,
) -> str:
    """Push a signature of `digest` by `key` (under the cosign tag, or as a referrer when
    `referrer_size`, the image manifest's size, is given); `corrupt` flips a byte of the signature.
    Returns the signature manifest's digest."""
    ref = parse_image_ref(image) if isinstance(image, str) else image
    body = payload(digest, f"{ref.registry}/{ref.repository}")
    signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
    if corrupt:
        signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
    subject = (digest, referrer_size) if referrer_size is not None else None
    manifest, config = signature_manifest(body, signature, subject=subject)
    writer = RegistryWriter(client)
    writer.push_blob(ref, config)
    writer.push_blob(ref, body)
    tag = sha256(manifest) if subject else digest.replace(":", "-", 1) + ".sig"
    writer.put_manifest(ref, tag, manifest, mt.OCI_MANIFEST)
    return sha256(manifest)
