"""Cosign image signatures in the simple-signing format: keyed (ECDSA P-256, RSA, Ed25519 over the
exact payload bytes) and keyless (a Fulcio certificate and a Rekor bundle in the layer's annotations)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from vigil.signatures import rekor
from vigil.signatures.bundle import identity_outcome
from vigil.signatures.certs import IdentityRule, chain_error
from vigil.signatures.keys import TrustedKey, signature_ok, signed_by
from vigil.signatures.outcome import Absent, Invalid, Outcome, Unknown, Verified, combine
from vigil.signatures.trustroot import TrustedRoot

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
MAX_PAYLOAD_BYTES = 1024 * 1024


def payload_reference(payload: bytes, digest: str) -> str | Invalid:
    """The payload's `critical.identity.docker-reference`, once its signed digest is `digest`."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Invalid(f"the payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return Invalid("the payload is not JSON")
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict):
        return Invalid("the payload has no critical section")
    signed = (critical.get("image") or {}).get("docker-manifest-digest")
    if signed != digest:
        return Invalid(f"the payload signs {signed}, not {digest}")
    ref = (critical.get("identity") or {}).get("docker-reference")
    return ref if isinstance(ref, str) else ""


def verify_simple_signing(payload: bytes, signature_b64: str, digest: str, keys: Sequence[TrustedKey]) -> Outcome:
    """A keyed cosign signature: the signature over the exact payload bytes by an accepted key, and the
    payload names `digest`."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return Invalid("the signature is not base64")
    if not keys:
        return Invalid("a keyed signature, and no key is accepted")
    key = signed_by(tuple(keys), signature, payload)
    if key is None:
        return Invalid("the signature does not verify with the accepted keys")
    ref = payload_reference(payload, digest)
    if isinstance(ref, Invalid):
        return ref
    return Verified(by=key.name, docker_reference=ref or None)


def verify_keyless(
    payload: bytes,
    annotations: Mapping[str, str],
    digest: str,
    root: TrustedRoot,
    identities: Sequence[IdentityRule],
) -> Outcome:
    """A keyless cosign signature: the certificate chains to a Fulcio CA at Rekor's integrated time,
    the signed entry timestamp verifies, the signature verifies with the certificate's key."""
    try:
        signature = base64.b64decode(annotations.get(SIGNATURE_ANNOTATION, ""), validate=True)
        cert = x509.load_pem_x509_certificate(annotations[CERTIFICATE_ANNOTATION].encode())
        rb: Any = json.loads(annotations[BUNDLE_ANNOTATION])
        body_b64 = str(rb["Payload"]["body"])
        integrated = int(rb["Payload"]["integratedTime"])
        log_id = bytes.fromhex(str(rb["Payload"]["logID"]))
        log_index = int(rb["Payload"]["logIndex"])
        set_b64 = str(rb["SignedEntryTimestamp"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        return Invalid("the keyless signature's certificate or Rekor bundle is malformed")
    log = root.log(log_id)
    if log is None:
        return Invalid(f"the Rekor bundle names log {log_id.hex()}, which is not in the trusted root")
    if not rekor.set_ok(log.key, set_b64, body_b64, integrated, log_id, log_index):
        return Invalid("the signed entry timestamp does not verify with the log's key")
    key = cert.public_key()
    if not signature_ok(key, signature, payload):  # type: ignore[arg-type]
        return Invalid("the signature does not verify with the certificate's key")
    try:
        body = json.loads(base64.b64decode(body_b64))
        spec = body["spec"]
        logged_sig = base64.b64decode(spec["signature"]["content"])
        logged_cert = x509.load_pem_x509_certificate(base64.b64decode(spec["signature"]["publicKey"]["content"]))
    except (KeyError, TypeError, ValueError, binascii.Error):
        return Invalid("the Rekor entry's body is malformed")
    if logged_sig != signature or logged_cert != cert:
        return Invalid("the log entry records another signature or certificate")
    signed_at = datetime.fromtimestamp(integrated, UTC)
    problem = chain_error(cert, root, signed_at)
    if problem:
        return Invalid(problem)
    ref = payload_reference(payload, digest)
    if isinstance(ref, Invalid):
        return ref
    outcome = identity_outcome(cert, identities, signed_at)
    if isinstance(outcome, Verified):
        return Verified(
            by=outcome.by,
            identity=outcome.identity,
            issuer=outcome.issuer,
            docker_reference=ref or None,
            signed_at=signed_at,
        )
    return outcome


def verify_signature_manifest(
    manifest: bytes,
    blobs: Mapping[str, bytes],
    digest: str,
    *,
    keys: Sequence[TrustedKey] = (),
    root: TrustedRoot | None = None,
    identities: Sequence[IdentityRule] = (),
) -> tuple[Outcome, tuple[Outcome, ...]]:
    """Every simple-signing layer of a cosign signature manifest (`sha256-<hex>.sig` or a referrer),
    with its payload blob from `blobs` by digest; the combined outcome and one per layer."""
    try:
        doc = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        return Invalid("the signature manifest is not JSON"), ()
    layers = doc.get("layers") if isinstance(doc, dict) else None
    parts: list[Outcome] = []
    for layer in layers if isinstance(layers, list) else []:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING:
            continue
        annotations = layer.get("annotations") or {}
        payload = blobs.get(str(layer.get("digest")))
        if payload is None:
            parts.append(Unknown(f"the payload blob {layer.get('digest')} was not fetched"))
        elif SIGNATURE_ANNOTATION not in annotations:
            parts.append(Invalid("a signature layer has no signature annotation"))
        elif CERTIFICATE_ANNOTATION in annotations:
            if root is None:
                parts.append(Unknown("a keyless signature and no trusted root to check it against"))
            else:
                parts.append(verify_keyless(payload, annotations, digest, root, identities))
        else:
            parts.append(verify_simple_signing(payload, annotations[SIGNATURE_ANNOTATION], digest, keys))
    if not parts:
        return Absent(), ()
    return combine(parts), tuple(parts)
