"""Sigstore bundles v0.1 to v0.3, keyless (Fulcio certificate) or keyed (public key hint).

What is checked, offline, against a supplied trusted root document:
- the signing time: Rekor's integrated time under a verified signed entry timestamp; bundles that
  carry RFC 3161 timestamps instead (timestamp authorities, Rekor v2) are handed to the `sigstore`
  package's `Verifier` (PyPI `sigstore`, which verifies offline against a `TrustedRoot` built from
  the same bytes) because it implements RFC 3161 and Rekor v2's entries;
- the certificate chain to a Fulcio CA of the trusted root, every certificate valid at that time;
- the Rekor entry: its signed entry timestamp and/or its inclusion proof with a checkpoint signed by
  the log's key, and that the entry records this signature, key and artifact (not another signing);
- the signature over the artifact's digest (message signatures) or over DSSE's pre-authentication
  encoding (DSSE envelopes, where every signature must verify);
- the identity: the certificate's OIDC issuer and subject against the accepted identities.

`sigstore` is not used for every bundle: it refuses v0.1 bundles whose log entries carry a signed
entry timestamp and no inclusion proof, `intoto` log entries and keyed bundles, all of which cosign,
npm and sigstore-go produce; this module verifies those with `cryptography`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from vigil.signatures import dsse as dsse
from vigil.signatures import rekor
from vigil.signatures.certs import IdentityRule, chain_error, issuer_of, subject_of
from vigil.signatures.keys import PublicKey, TrustedKey
from vigil.signatures.outcome import Invalid, Outcome, Unknown, Verified
from vigil.signatures.trustroot import TrustedRoot

MAX_BUNDLE_BYTES = 8 * 1024 * 1024
MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"


class _Reject(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _b64(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise _Reject(f"{field} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Reject(f"{field} is not base64") from None


def _int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Reject(f"{field} is missing")
    try:
        return int(value)
    except ValueError:
        raise _Reject(f"{field} is not a number") from None


@dataclass(frozen=True)
class Signer:
    """The signing key and, for keyless bundles, the certificate it came in."""

    key: PublicKey
    certificate: x509.Certificate | None
    trusted_key: TrustedKey | None


def _prehashed_ok(key: PublicKey, signature: bytes, digest: bytes, artifact: bytes | None) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            if artifact is None:
                return False
            key.verify(signature, artifact)
        return True
    except (InvalidSignature, ValueError):
        return False


def _signer(material: dict[str, Any], keys: Sequence[TrustedKey]) -> Signer:
    cert_doc = material.get("certificate")
    chain = (material.get("x509CertificateChain") or {}).get("certificates")
    if isinstance(cert_doc, dict) or chain:
        raw = cert_doc.get("rawBytes") if isinstance(cert_doc, dict) else (chain or [{}])[0].get("rawBytes")
        try:
            cert = x509.load_der_x509_certificate(_b64(raw, "the bundle's certificate"))
        except ValueError:
            raise _Reject("the bundle's certificate is not a DER certificate") from None
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
            raise _Reject("the certificate's key type is not supported")
        return Signer(key, cert, None)
    if "publicKey" in material:
        if not keys:
            raise _Reject("the bundle is signed by a key and no key is accepted")
        # The hint names the key; the signature decides which accepted key made it.
        return Signer(keys[0].key, None, None)
    raise _Reject("the bundle has no certificate and no public key")


def _material_matches(
    body: dict[str, Any], signer: Signer, signature: bytes, payload_sha: str | None, digest_hex: str | None
) -> str | None:
    """Why the log entry does not record this signing (CVE-2022-36056), or None."""
    kind = body.get("kind")
    spec = body.get("spec") or {}

    def same_key(content_b64: object) -> bool:
        if not isinstance(content_b64, str):
            return False
        try:
            pem = base64.b64decode(content_b64)
        except (binascii.Error, ValueError):
            return False
        if signer.certificate is not None:
            try:
                return x509.load_pem_x509_certificate(pem) == signer.certificate
            except ValueError:
                return False
        try:
            logged = serialization.load_pem_public_key(pem)
        except ValueError:
            return False
        der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        return logged.public_bytes(*der) == signer.key.public_bytes(*der)

    def same_sig(value: object) -> bool:
        if not isinstance(value, str):
            return False
        try:
            once = base64.b64decode(value)
        except (binascii.Error, ValueError):
            return False
        # intoto entries store the envelope's base64 signature base64-encoded once more.
        return once == signature or once == base64.b64encode(signature)

    if kind == "hashedrekord":
        sig = spec.get("signature") or {}
        if not same_sig(sig.get("content")):
            return "the log entry records another signature"
        if not same_key((sig.get("publicKey") or {}).get("content")):
            return "the log entry records another certificate or key"
        if digest_hex is not None and ((spec.get("data") or {}).get("hash") or {}).get("value") != digest_hex:
            return "the log entry records another artifact digest"
        return None
    if kind == "dsse":
        sigs = spec.get("signatures") or []
        if not any(same_sig(s.get("signature")) and same_key(s.get("verifier")) for s in sigs if isinstance(s, dict)):
            return "the log entry records another signature or certificate"
        if (spec.get("payloadHash") or {}).get("value") != payload_sha:
            return "the log entry records another payload"
        return None
    if kind == "intoto":
        content = spec.get("content") or {}
        sigs = (content.get("envelope") or {}).get("signatures") or []
        if not any(same_sig(s.get("sig")) and same_key(s.get("publicKey")) for s in sigs if isinstance(s, dict)):
            return "the log entry records another signature or certificate"
        if (content.get("payloadHash") or {}).get("value") != payload_sha:
            return "the log entry records another payload"
        return None
    return f"log entries of kind {kind!r} are not supported"


def _entry_time(entry: dict[str, Any], root: TrustedRoot) -> tuple[datetime | None, bytes]:
    """The entry's signed time (None without a signed entry timestamp) and its body; raises on any
    proof that is present and fails."""
    body_b64 = entry.get("canonicalizedBody")
    body = _b64(body_b64, "the log entry's canonicalizedBody")
    log_id = _b64((entry.get("logId") or {}).get("keyId"), "the log entry's logId")
    log = root.log(log_id)
    if log is None:
        raise _Reject(f"the log entry names log {log_id.hex()}, which is not in the trusted root")
    log_index = _int(entry.get("logIndex"), "the log entry's logIndex")
    signed_time: datetime | None = None
    promise = entry.get("inclusionPromise")
    if isinstance(promise, dict) and promise.get("signedEntryTimestamp"):
        integrated = _int(entry.get("integratedTime"), "the log entry's integratedTime")
        if not rekor.set_ok(
            log.key, str(promise["signedEntryTimestamp"]), str(body_b64), integrated, log_id, log_index
        ):
            raise _Reject("the signed entry timestamp does not verify with the log's key")
        signed_time = datetime.fromtimestamp(integrated, UTC)
    proof = entry.get("inclusionProof")
    if isinstance(proof, dict):
        envelope = (proof.get("checkpoint") or {}).get("envelope")
        if not isinstance(envelope, str) or not envelope:
            raise _Reject("the inclusion proof has no checkpoint")
        size = _int(proof.get("treeSize"), "the inclusion proof's treeSize")
        index = _int(proof.get("logIndex"), "the inclusion proof's logIndex")
        path = [_b64(h, "an inclusion proof hash") for h in proof.get("hashes") or []]
        root_hash = _b64(proof.get("rootHash"), "the inclusion proof's rootHash")
        computed = rekor.root_from_inclusion_proof(index, size, rekor.leaf_hash(body), path)
        if computed is None or computed != root_hash:
            raise _Reject("the inclusion proof does not lead to its root hash")
        cp = rekor.checkpoint(envelope, log.key)
        if isinstance(cp, str):
            raise _Reject(cp)
        if cp != (size, root_hash):
            raise _Reject("the checkpoint names another tree than the inclusion proof")
    elif signed_time is None:
        raise _Reject("the log entry has neither a signed entry timestamp nor an inclusion proof")
    if signed_time is not None and not log.valid.contains(signed_time):
        raise _Reject("the log's key was not valid at the integrated time")
    return signed_time, body


def _needs_sigstore(doc: dict[str, Any]) -> bool:
    material = doc.get("verificationMaterial") or {}
    if (material.get("timestampVerificationData") or {}).get("rfc3161Timestamps"):
        return True
    return any(
        ((e or {}).get("kindVersion") or {}).get("version") == "0.0.2"
        and ((e or {}).get("kindVersion") or {}).get("kind") in ("hashedrekord", "dsse")
        for e in material.get("tlogEntries") or []
    )


def verify_bundle(
    data: bytes,
    root: TrustedRoot,
    *,
    digest: str | None = None,
    artifact: bytes | None = None,
    identities: Sequence[IdentityRule] = (),
    keys: Sequence[TrustedKey] = (),
    subject_digest: str | None = None,
) -> Outcome:
    """Verify one bundle. A message signature needs the artifact (`artifact`) or its `sha256:` digest
    (`digest`); a DSSE envelope's in-toto statement must name `subject_digest` when given."""
    if len(data) > MAX_BUNDLE_BYTES:
        return Invalid(f"the bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return Invalid("the bundle is not JSON")
    if not isinstance(doc, dict) or not str(doc.get("mediaType", "")).startswith(MEDIA_TYPE_PREFIX):
        return Invalid("not a Sigstore bundle (mediaType)")
    if artifact is not None:
        digest = "sha256:" + hashlib.sha256(artifact).hexdigest()
    try:
        if _needs_sigstore(doc):
            if "publicKey" in (doc.get("verificationMaterial") or {}):
                return Unknown("keyed bundles with RFC 3161 timestamps or Rekor v2 entries are not supported")
            from vigil.signatures.sigstore_adapter import verify as sigstore_verify

            return sigstore_verify(data, root, doc, digest, identities, subject_digest)
        return _verify(doc, root, digest, artifact, identities, keys, subject_digest)
    except _Reject as r:
        return Invalid(r.why)


def _verify(
    doc: dict[str, Any],
    root: TrustedRoot,
    digest: str | None,
    artifact: bytes | None,
    identities: Sequence[IdentityRule],
    keys: Sequence[TrustedKey],
    subject_digest: str | None,
) -> Outcome:
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise _Reject("the bundle has no verificationMaterial")
    signer = _signer(material, keys)
    entries = material.get("tlogEntries") or []
    if not entries:
        raise _Reject("the bundle has no transparency log entry")

    # The signature itself.
    predicate_type = None
    provenance = None
    payload_sha: str | None = None
    digest_hex: str | None = None
    if isinstance(doc.get("messageSignature"), dict):
        ms = doc["messageSignature"]
        signature = _b64(ms.get("signature"), "the message signature")
        md = ms.get("messageDigest") or {}
        bundle_digest = _b64(md.get("digest"), "the message digest")
        if digest is None:
            raise _Reject("no artifact digest to check the message signature against")
        if not digest.startswith("sha256:") or bundle_digest.hex() != digest.removeprefix("sha256:"):
            raise _Reject(f"the bundle signs another artifact (sha256:{bundle_digest.hex()}, expected {digest})")
        digest_hex = bundle_digest.hex()
        candidates = [TrustedKey("", signer.key)] if signer.certificate is not None else list(keys)
        made = next((k for k in candidates if _prehashed_ok(k.key, signature, bundle_digest, artifact)), None)
        if made is None:
            raise _Reject(
                "the signature does not verify with the "
                + ("certificate's key" if signer.certificate else "accepted keys")
            )
        if signer.certificate is None:
            signer = Signer(made.key, None, made)
    elif isinstance(doc.get("dsseEnvelope"), dict):
        env = dsse.parse_envelope_doc(doc["dsseEnvelope"])
        if isinstance(env, str):
            raise _Reject(env)
        if not env.signatures:
            raise _Reject("the DSSE envelope has no signature")
        candidates = [TrustedKey("", signer.key)] if signer.certificate is not None else list(keys)
        made = None
        for i, sig in enumerate(env.signatures, 1):
            k = next((c for c in candidates if dsse.pae_ok(c.key, env, sig)), None)
            if k is None:
                raise _Reject(
                    f"signature {i} of the DSSE envelope does not verify with the "
                    + ("certificate's key" if signer.certificate else "accepted keys")
                )
            made = made or k
        if signer.certificate is None and made is not None:
            signer = Signer(made.key, None, made)
        signature = env.signatures[0]
        payload_sha = hashlib.sha256(env.payload).hexdigest()
        statement = dsse.check_statement(env, subject_digest)
        if isinstance(statement, str):
            raise _Reject(statement)
        predicate_type, provenance = statement
    else:
        raise _Reject("the bundle has neither a message signature nor a DSSE envelope")

    # The log: the entry records this signing, and its proofs hold.
    signed_at: datetime | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            raise _Reject("a log entry is not an object")
        t, body = _entry_time(entry, root)
        try:
            body_doc = json.loads(body)
        except ValueError:
            raise _Reject("the log entry's body is not JSON") from None
        mismatch = _material_matches(body_doc, signer, signature, payload_sha, digest_hex)
        if mismatch:
            raise _Reject(mismatch)
        if t is not None and (signed_at is None or t < signed_at):
            signed_at = t
    if signer.certificate is None:
        assert signer.trusted_key is not None
        return Verified(
            by=signer.trusted_key.name, signed_at=signed_at, predicate_type=predicate_type, provenance=provenance
        )
    if signed_at is None:
        raise _Reject(
            "the bundle has no signed time (no signed entry timestamp or timestamp) to check the certificate at"
        )
    problem = chain_error(signer.certificate, root, signed_at)
    if problem:
        raise _Reject(problem)
    return identity_outcome(signer.certificate, identities, signed_at, predicate_type, provenance)


def identity_outcome(
    cert: x509.Certificate,
    identities: Sequence[IdentityRule],
    signed_at: datetime | None,
    predicate_type: str | None = None,
    provenance: Any = None,
) -> Outcome:
    issuer = issuer_of(cert)
    subject = subject_of(cert)
    if issuer is None or subject is None:
        return Invalid("the certificate names no OIDC issuer or no subject")
    if not identities:
        return Unknown(f"signed by {issuer}={subject}, and no identity is accepted")
    for rule in identities:
        if rule.accepts(issuer, subject):
            return Verified(
                by=f"{issuer}={subject}",
                identity=subject,
                issuer=issuer,
                signed_at=signed_at,
                predicate_type=predicate_type,
                provenance=provenance,
            )
    return Invalid(f"signed by {issuer}={subject}, which no accepted identity matches")
