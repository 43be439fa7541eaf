"""What each signature and attestation of a digest proves (pure: the artifacts are already fetched).

A digest's artifacts are checked once against every key the trust policy accepts and, for keyless
signatures, against the trusted root with any identity: each check records which key or which identity
signed. Whether that signer is one a requirement accepts is decided later, by `signature_verdict`, from
the stored checks alone, so a digest costs registry requests once and a requirement costs none.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from vigil.registry.signatures import Discovery, SignatureArtifact
from vigil.signatures import bundle, cosign, dsse
from vigil.signatures.certs import IdentityRule
from vigil.signatures.keys import TrustedKey, signed_by
from vigil.signatures.outcome import Absent, Invalid, Outcome, Provenance, Unknown, Verified
from vigil.signatures.trustroot import TrustedRoot

BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
DSSE_TYPE = "application/vnd.dsse.envelope.v1+json"
# Keyless checks record whoever signed; requirements match the identity afterwards.
ANY_IDENTITY = IdentityRule(issuer_pattern=".*", subject_pattern=".*")
NOT_BY_AN_ACCEPTED_KEY = "the signature does not verify with any accepted key (another key made it, or it was altered)"
MAX_CHECKS = 64

Kind = Literal["signature", "attestation"]


@dataclass(frozen=True)
class SignatureCheck:
    """One signature or attestation of the digest and what it proves.

    ``foreign``: the check failed only because no accepted key verifies it. Vigil cannot tell a
    signature by a key it was not given from an altered one, so such a check makes an image unsigned
    (for the requirement), never invalid."""

    artifact: str  # the signature manifest's digest
    source: Literal["referrer", "tag"]
    kind: Kind
    outcome: Outcome
    foreign: bool = False

    def signer(self) -> str | None:
        """`key sha256:..` or `identity ISSUER=SUBJECT` of a verified check."""
        o = self.outcome
        if not isinstance(o, Verified):
            return None
        if o.issuer is not None and o.identity is not None:
            return f"identity {o.issuer}={o.identity}"
        return f"key {o.by}"

    def to_doc(self) -> dict[str, Any]:
        o = self.outcome
        doc: dict[str, Any] = {"artifact": self.artifact, "source": self.source, "kind": self.kind, "result": o.kind}
        if self.foreign:
            doc["foreign"] = True
        if isinstance(o, Invalid | Unknown):
            doc["why"] = o.why
        if isinstance(o, Verified):
            doc.update(
                by=o.by,
                identity=o.identity,
                issuer=o.issuer,
                docker_reference=o.docker_reference,
                signed_at=o.signed_at.isoformat() if o.signed_at else None,
                predicate_type=o.predicate_type,
                provenance=None if o.provenance is None else o.provenance.as_doc(),
            )
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> SignatureCheck:
        result = doc.get("result")
        outcome: Outcome
        if result == "verified":
            prov = doc.get("provenance")
            signed_at = doc.get("signed_at")
            outcome = Verified(
                by=str(doc.get("by")),
                identity=doc.get("identity"),
                issuer=doc.get("issuer"),
                docker_reference=doc.get("docker_reference"),
                signed_at=datetime.fromisoformat(signed_at) if signed_at else None,
                predicate_type=doc.get("predicate_type"),
                provenance=Provenance(**prov) if isinstance(prov, dict) else None,
            )
        elif result == "invalid":
            outcome = Invalid(str(doc.get("why")))
        elif result == "unknown":
            outcome = Unknown(str(doc.get("why")))
        else:
            outcome = Absent()
        return cls(
            str(doc.get("artifact")),
            "referrer" if doc.get("source") == "referrer" else "tag",
            "attestation" if doc.get("kind") == "attestation" else "signature",
            outcome,
            bool(doc.get("foreign")),
        )


@dataclass(frozen=True)
class DigestSignatures:
    """Every check of one digest's signatures; ``unknown`` says why the artifacts could not be fetched."""

    digest: str
    checks: tuple[SignatureCheck, ...] = ()
    unknown: str | None = None
    referrers_api: bool | None = None

    @property
    def status(self) -> str:
        """verified (one check verified), invalid (one is present and fails), absent, or unknown."""
        if self.unknown is not None:
            return "unknown"
        results = [c.outcome for c in self.checks]
        if any(isinstance(o, Verified) for o in results):
            return "verified"
        if any(isinstance(o, Invalid) for o in results):
            return "invalid"
        if any(isinstance(o, Unknown) for o in results):
            return "unknown"
        return "absent"

    def to_doc(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "checks": [c.to_doc() for c in self.checks],
            "unknown": self.unknown,
            "referrers_api": self.referrers_api,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> DigestSignatures:
        checks = doc.get("checks") or []
        return cls(
            str(doc.get("digest")),
            tuple(SignatureCheck.from_doc(c) for c in checks[:MAX_CHECKS] if isinstance(c, dict)),
            doc.get("unknown"),
            doc.get("referrers_api"),
        )


def _layers(manifest: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        return []
    layers = doc.get("layers") if isinstance(doc, dict) else None
    return [x for x in layers if isinstance(x, dict)] if isinstance(layers, list) else []


def _keyed_simple_signing(payload: bytes, signature_b64: str, digest: str, keys: Sequence[TrustedKey]) -> Outcome:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return Invalid("the signature is not base64")
    key = signed_by(tuple(keys), signature, payload)
    if key is None:
        return Invalid(NOT_BY_AN_ACCEPTED_KEY)
    return cosign.verify_simple_signing(payload, signature_b64, digest, [key])


def _attestation(data: bytes, digest: str, keys: Sequence[TrustedKey]) -> Outcome:
    envelope = dsse.parse_envelope(data)
    if isinstance(envelope, str):
        return Invalid(envelope)
    if envelope.signatures and not any(dsse.pae_ok(k.key, envelope, s) for k in keys for s in envelope.signatures):
        return Invalid(NOT_BY_AN_ACCEPTED_KEY)
    return dsse.verify_attestation(data, keys, digest)


def _bundle_kind(data: bytes) -> Kind:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return "signature"
    return "attestation" if isinstance(doc, dict) and "dsseEnvelope" in doc else "signature"


def check_artifact(
    artifact: SignatureArtifact, keys: Sequence[TrustedKey], root: TrustedRoot | None
) -> list[SignatureCheck]:
    """One check per signature layer of `artifact` (a cosign signature manifest, a bundle referrer or
    an attestation manifest)."""
    digest = artifact.subject
    out: list[SignatureCheck] = []

    def add(kind: Kind, outcome: Outcome) -> None:
        foreign = isinstance(outcome, Invalid) and outcome.why == NOT_BY_AN_ACCEPTED_KEY
        out.append(SignatureCheck(artifact.manifest_digest, artifact.source, kind, outcome, foreign))

    for layer in _layers(artifact.manifest):
        media_type = str(layer.get("mediaType", ""))
        blob_digest = str(layer.get("digest"))
        kind: Kind = "attestation" if media_type == DSSE_TYPE else "signature"
        if not (media_type in (cosign.SIMPLE_SIGNING, DSSE_TYPE) or media_type.startswith(BUNDLE_PREFIX)):
            continue
        if blob_digest in artifact.tampered:
            add(kind, Invalid(f"the blob {blob_digest} the registry serves is not the content of its digest"))
            continue
        data = artifact.blobs.get(blob_digest)
        if data is None:
            add(kind, Unknown(f"the blob {blob_digest} was not fetched (over the size limit)"))
            continue
        annotations = layer.get("annotations") or {}
        if media_type == cosign.SIMPLE_SIGNING:
            if cosign.SIGNATURE_ANNOTATION not in annotations:
                add(kind, Invalid("a signature layer has no signature annotation"))
            elif cosign.CERTIFICATE_ANNOTATION in annotations:
                if root is None:
                    add(kind, Unknown("a keyless signature, and no rule accepts a keyless identity"))
                else:
                    add(kind, cosign.verify_keyless(data, annotations, digest, root, [ANY_IDENTITY]))
            else:
                add(kind, _keyed_simple_signing(data, annotations[cosign.SIGNATURE_ANNOTATION], digest, keys))
        elif media_type == DSSE_TYPE:
            if cosign.CERTIFICATE_ANNOTATION in annotations:
                add(kind, Unknown("keyless attestations under the .att tag are not verified"))
            else:
                add(kind, _attestation(data, digest, keys))
        else:
            kind = _bundle_kind(data)
            if root is None and not keys:
                add(kind, Unknown("a Sigstore bundle, and no rule accepts a key or a keyless identity"))
                continue
            if root is None:
                add(kind, Unknown("a Sigstore bundle, and no trusted root to check it against"))
                continue
            add(
                kind,
                bundle.verify_bundle(
                    data, root, digest=digest, identities=[ANY_IDENTITY], keys=keys, subject_digest=digest
                ),
            )
    return out


def check_discovered(
    found: Discovery, digest: str, keys: Sequence[TrustedKey], root: TrustedRoot | None
) -> DigestSignatures:
    """The checks of every discovered artifact of `digest` (and, for an index, of its platform
    manifest: artifacts keep the digest they sign)."""
    checks: list[SignatureCheck] = []
    for artifact in found.artifacts:
        checks.extend(check_artifact(artifact, keys, root))
    return DigestSignatures(digest, tuple(checks[:MAX_CHECKS]), None, found.referrers_api)


def unknown(digest: str, why: str) -> DigestSignatures:
    return DigestSignatures(digest, (), why)
