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


DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SLSA_V1 = "https://slsa.dev/provenance/v1"


def slsa_v1_statement(digest: str, name: str, *, builder_id: str, repository: str, commit: str) -> bytes:
    """An in-toto statement of SLSA v1 provenance for `digest`, as GitHub's generator writes it."""
    doc = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": SLSA_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": repository}},
                "internalParameters": {"github": {"event_name": "push"}},
                "resolvedDependencies": [{"uri": f"git+{repository}@refs/heads/main", "digest": {"gitCommit": commit}}],
            },
            "runDetails": {"builder": {"id": builder_id}},
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def attest(
    client: RegistryClient,
    image: ImageRef | str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    statement: bytes,
) -> str:
    """Push a DSSE attestation of `digest` (as `cosign attest --key` does: one envelope layer under the
    `sha256-<hex>.att` tag). Returns the attestation manifest's digest."""
    ref = parse_image_ref(image) if isinstance(image, str) else image
    pae = b"DSSEv1 %d %s %d %s" % (len(IN_TOTO), IN_TOTO.encode(), len(statement), statement)
    envelope = json.dumps(
        {
            "payloadType": IN_TOTO,
            "payload": base64.b64encode(statement).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(key.sign(pae, ec.ECDSA(hashes.SHA256()))).decode()}],
        },
        separators=(",", ":"),
    ).encode()
    config = b"{}"
    predicate_type = json.loads(statement).get("predicateType", "")
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": DSSE_ENVELOPE,
                    "digest": sha256(envelope),
                    "size": len(envelope),
                    "annotations": {"predicateType": predicate_type},
                }
            ],
        }
    )
    writer = RegistryWriter(client)
    writer.push_blob(ref, config)
    writer.push_blob(ref, envelope)
    writer.put_manifest(ref, digest.replace(":", "-", 1) + ".att", manifest, mt.OCI_MANIFEST)
    return sha256(manifest)
