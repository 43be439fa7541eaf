"""DSSE envelopes and the in-toto statements they carry: the pre-authentication encoding signature,
the statement's subject digest, its predicate type, and SLSA provenance (v0.2 and v1) facts."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vigil.signatures.keys import PublicKey, TrustedKey, signature_ok
from vigil.signatures.outcome import Invalid, Outcome, Provenance, Verified

MAX_ENVELOPE_BYTES = 8 * 1024 * 1024
IN_TOTO = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]


def pae(payload_type: str, payload: bytes) -> bytes:
    """`DSSEv1 <len(type)> <type> <len(body)> <body>`, lengths in ASCII decimal bytes."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def pae_ok(key: PublicKey, envelope: Envelope, signature: bytes) -> bool:
    return signature_ok(key, signature, pae(envelope.payload_type, envelope.payload))


def parse_envelope_doc(doc: Any) -> Envelope | str:
    """The envelope of a parsed document, or why it is not one."""
    if not isinstance(doc, dict):
        return "the DSSE envelope is not an object"
    if not isinstance(doc.get("payloadType"), str) or not isinstance(doc.get("payload"), str):
        return "the DSSE envelope has no payloadType or payload"
    try:
        payload = base64.b64decode(doc["payload"], validate=True)
        sigs = tuple(
            base64.b64decode(s.get("sig", ""), validate=True)
            for s in doc.get("signatures") or []
            if isinstance(s, dict)
        )
    except (binascii.Error, ValueError):
        return "the DSSE envelope's payload or a signature is not base64"
    return Envelope(doc["payloadType"], payload, sigs)


def parse_envelope(data: bytes) -> Envelope | str:
    if len(data) > MAX_ENVELOPE_BYTES:
        return f"the DSSE envelope is larger than {MAX_ENVELOPE_BYTES} bytes"
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return "the DSSE envelope is not JSON"
    return parse_envelope_doc(doc)


def _str(doc: Any, *path: str) -> str | None:
    for p in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(p)
    return doc if isinstance(doc, str) and doc else None


def provenance_facts(predicate_type: str, predicate: Any) -> Provenance | None:
    """Builder id, source repository and revision, and build trigger of a SLSA provenance."""
    if predicate_type == SLSA_V02:
        source = _str(predicate, "invocation", "configSource", "uri")
        revision = None
        digest = (((predicate or {}).get("invocation") or {}).get("configSource") or {}).get("digest")
        if isinstance(digest, dict):
            revision = digest.get("sha1") or digest.get("gitCommit") or next(iter(digest.values()), None)
        trigger = _str(predicate, "invocation", "environment", "github_event_name")
        return Provenance(_str(predicate, "builder", "id"), source, revision, trigger)
    if predicate_type == SLSA_V1:
        params = _str(predicate, "buildDefinition", "externalParameters", "workflow", "repository")
        revision = None
        deps = ((predicate or {}).get("buildDefinition") or {}).get("resolvedDependencies") or []
        source = params
        for dep in deps:
            if isinstance(dep, dict) and isinstance(dep.get("digest"), dict):
                source = source or dep.get("uri")
                revision = dep["digest"].get("gitCommit") or dep["digest"].get("sha1")
                break
        trigger = _str(predicate, "buildDefinition", "internalParameters", "github", "event_name")
        return Provenance(_str(predicate, "runDetails", "builder", "id"), source, revision, trigger)
    return None


def check_statement(envelope: Envelope, subject_digest: str | None) -> tuple[str, Provenance | None] | str:
    """The statement's predicate type and provenance facts, or why the statement is not acceptable:
    the envelope must carry an in-toto statement, and one subject must have `subject_digest`.

    Cosign of 2021 put the predicate type in `payloadType`; such envelopes are accepted when the
    payload is an in-toto statement with that predicate type."""
    try:
        statement = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError):
        return "the DSSE payload is not JSON"
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        return "the DSSE payload is not an in-toto statement"
    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        return "the in-toto statement has no predicateType"
    if envelope.payload_type not in (IN_TOTO, predicate_type):
        return f"the DSSE payloadType {envelope.payload_type!r} is not {IN_TOTO}"
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        return "the in-toto statement has no subject"
    if subject_digest is not None:
        algorithm, _, value = subject_digest.partition(":")
        names = [
            s.get("digest", {}).get(algorithm)
            for s in subjects
            if isinstance(s, dict) and isinstance(s.get("digest"), dict)
        ]
        if value not in names:
            return f"no subject of the in-toto statement has the digest {subject_digest}"
    return predicate_type, provenance_facts(predicate_type, statement.get("predicate"))


def verify_attestation(
    data: bytes,
    keys: Sequence[TrustedKey],
    subject_digest: str | None,
    *,
    predicate_types: Sequence[str] = (),
) -> Outcome:
    """A keyed DSSE attestation (`cosign attest --key`): every signature must verify with an accepted
    key, the statement must name the digest, and its predicate type must be one of `predicate_types`
    when given."""
    envelope = parse_envelope(data)
    if isinstance(envelope, str):
        return Invalid(envelope)
    if not envelope.signatures:
        return Invalid("the DSSE envelope has no signature")
    signer: TrustedKey | None = None
    for i, sig in enumerate(envelope.signatures, 1):
        k = next((k for k in keys if pae_ok(k.key, envelope, sig)), None)
        if k is None:
            return Invalid(f"signature {i} of the DSSE envelope does not verify with the accepted keys")
        signer = signer or k
    assert signer is not None
    statement = check_statement(envelope, subject_digest)
    if isinstance(statement, str):
        return Invalid(statement)
    predicate_type, provenance = statement
    if predicate_types and predicate_type not in predicate_types:
        return Invalid(f"the predicate type {predicate_type} is not one of {', '.join(predicate_types)}")
    return Verified(by=signer.name, predicate_type=predicate_type, provenance=provenance)


def verify_envelope(data: bytes, keys: Sequence[TrustedKey]) -> tuple[Outcome, Envelope | None]:
    """Only the envelope's signatures (in-toto links and other non-statement payloads): verified by
    the key that made the first signature, with the envelope for the caller to read."""
    envelope = parse_envelope(data)
    if isinstance(envelope, str):
        return Invalid(envelope), None
    if not envelope.signatures:
        return Invalid("the DSSE envelope has no signature"), envelope
    for sig in envelope.signatures:
        k = next((k for k in keys if pae_ok(k.key, envelope, sig)), None)
        if k is not None:
            return Verified(by=k.name), envelope
    return Invalid("no signature of the DSSE envelope verifies with the accepted keys"), envelope
