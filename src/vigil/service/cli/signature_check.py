"""`vigil image check`'s signature step: discover what signs the running digest, verify it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vigil.cli_paths import input_file
from vigil.model.image import ImageRef
from vigil.policy.signature_checks import DigestSignatures, check_discovered, unknown
from vigil.policy.signature_rules import material, rule_for
from vigil.policy.signature_verdict import SignatureStatus, SignatureVerdict, evaluate
from vigil.policy.trust import TrustPolicy
from vigil.registry import RegistryClient
from vigil.registry.errors import RegistryError
from vigil.registry.signatures import Discovery, discover
from vigil.signatures import bundle, cosign, dsse
from vigil.signatures.certs import IdentityRule
from vigil.signatures.keys import MAX_KEY_BYTES, BadKey, TrustedKey, load_public_key
from vigil.signatures.outcome import Absent, Outcome, Unknown, Verified, combine
from vigil.signatures.trustroot import BadTrustedRoot, TrustedRoot, parse_trusted_root, public_good_root

BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
DSSE_TYPE = "application/vnd.dsse.envelope.v1+json"


def verify_discovered(
    found: Discovery,
    digests: Sequence[str],
    *,
    keys: Sequence[TrustedKey] = (),
    identities: Sequence[IdentityRule] = (),
    root: TrustedRoot | None = None,
) -> Outcome:
    """Every discovered signature of the digests; any verified one verifies (see `combine`)."""
    parts: list[Outcome] = []
    for artifact in found.artifacts:
        outcome, _ = cosign.verify_signature_manifest(
            artifact.manifest, artifact.blobs, artifact.subject, keys=keys, root=root, identities=identities
        )
        if not isinstance(outcome, Absent):
            parts.append(outcome)
            continue
        for media_type, data in _typed_blobs(artifact.manifest, artifact.blobs):
            if media_type.startswith(BUNDLE_PREFIX):
                if root is None:
                    parts.append(Unknown("a Sigstore bundle and no trusted root to check it against"))
                else:
                    parts.append(
                        bundle.verify_bundle(
                            data,
                            root,
                            digest=artifact.subject,
                            identities=identities,
                            keys=keys,
                            subject_digest=artifact.subject,
                        )
                    )
            elif media_type == DSSE_TYPE and keys:
                parts.append(dsse.verify_attestation(data, keys, artifact.subject))
    return combine(parts)


def _typed_blobs(manifest: bytes, blobs: dict[str, bytes]) -> Iterable[tuple[str, bytes]]:
    try:
        doc = json.loads(manifest)
    except ValueError:
        return []
    out: list[tuple[str, bytes]] = []
    for layer in doc.get("layers") or []:
        if isinstance(layer, dict) and layer.get("digest") in blobs:
            out.append((str(layer.get("mediaType", "")), blobs[layer["digest"]]))
    return out


def check_signatures(
    client: RegistryClient,
    image: ImageRef,
    digests: Sequence[str],
    *,
    keys: Sequence[TrustedKey] = (),
    identities: Sequence[IdentityRule] = (),
    root: TrustedRoot | None = None,
) -> Outcome:
    """Unknown when the registry cannot be asked: never a violation by itself."""
    try:
        found = discover(client, image, digests)
    except RegistryError as e:
        return Unknown(f"signatures could not be fetched: {e}")
    return verify_discovered(found, digests, keys=keys, identities=identities, root=root)


@dataclass(frozen=True)
class Requirement:
    """What `vigil image check --key/--identity` requires: a signature by one of these."""

    keys: tuple[TrustedKey, ...]
    identities: tuple[IdentityRule, ...]
    root: TrustedRoot | None


def requirement(key_file: Path | None, identities: Sequence[str], trusted_root: Path | None) -> Requirement | None:
    """The options' requirement, or None without --key and --identity; BadPath or UsageError (exit 2)
    name the option and the value."""
    from vigil.service.cli.image_verdict import UsageError

    if key_file is None and not identities:
        if trusted_root is not None:
            raise UsageError("--trusted-root is read with --identity only")
        return None
    keys: tuple[TrustedKey, ...] = ()
    if key_file is not None:
        data = input_file(key_file, "--key").read_bytes()[: MAX_KEY_BYTES + 1]
        try:
            keys = (TrustedKey(str(key_file), load_public_key(data)),)
        except BadKey as e:
            raise UsageError(f"--key {key_file}: {e}") from None
    rules: list[IdentityRule] = []
    for text in identities:
        issuer, sep, subject = text.partition("=")
        if not sep or not issuer or not subject:
            raise UsageError(f"--identity {text!r}: expected ISSUER=SUBJECT (SUBJECT may be ~REGEX)")
        try:
            if subject.startswith("~"):
                rules.append(IdentityRule(issuer=issuer, subject_pattern=subject[1:]))
            else:
                rules.append(IdentityRule(issuer=issuer, subject=subject))
        except re.error as e:
            raise UsageError(f"--identity {text!r}: the subject pattern is not a regular expression ({e})") from None
    root: TrustedRoot | None = None
    if rules or trusted_root is not None:
        raw = input_file(trusted_root, "--trusted-root").read_bytes() if trusted_root else public_good_root()
        try:
            root = parse_trusted_root(raw)
        except BadTrustedRoot as e:
            raise UsageError(f"--trusted-root {trusted_root}: {e}") from None
    return Requirement(keys, tuple(rules), root)


def run(client: RegistryClient, image: ImageRef, digest: str | None, need: Requirement) -> Outcome:
    if digest is None:
        return Unknown("the digest that runs is not known")
    digests = [digest] + ([image.digest] if image.digest and image.digest != digest else [])
    return check_signatures(client, image, digests, keys=need.keys, identities=need.identities, root=need.root)


def exit_code(outcome: Outcome) -> int:
    """1 when a required signature is absent or invalid, 3 when it could not be checked, else 0."""
    if isinstance(outcome, Verified):
        return 0
    return 3 if isinstance(outcome, Unknown) else 1


def line(outcome: Outcome) -> str:
    return f"signature: {outcome.line()}"


def policy_check(
    client: RegistryClient,
    image: ImageRef,
    trust: TrustPolicy,
    cluster: str | None,
    namespace: str | None,
    digest: str | None,
) -> tuple[SignatureVerdict, DigestSignatures | None] | None:
    """The trust policy's signature rule for the image, checked as the service checks a running digest
    (every accepted key, any keyless identity, then the rule's verdict): None when no rule applies."""
    keys = (cluster,) if cluster else ()
    decision = trust.decide(image.with_digest(digest) if digest else image, keys)
    rule = rule_for(trust.signatures, decision.effective, keys, namespace)
    if rule is None:
        return None
    sigs: DigestSignatures | None
    if decision.trusted is not True:
        sigs = unknown(digest or "", "the registry is not trusted, so it is not asked for signatures")
    elif digest is None:
        sigs = unknown("", "the digest that runs is not known")
    else:
        mat = material(trust.signatures)
        root = parse_trusted_root(public_good_root()) if mat.keyless else None
        digests = [digest] + ([image.digest] if image.digest and image.digest != digest else [])
        try:
            found = discover(client, decision.effective, digests)
        except RegistryError as e:
            sigs = unknown(digest, f"signatures could not be fetched: {e}")
        else:
            sigs = check_discovered(found, digest, mat.keys, root)
    name = str(decision.effective.with_digest(digest)) if digest else str(decision.effective)
    return evaluate(sigs, rule, image=name, digest=digest), sigs


def policy_line(verdict: SignatureVerdict) -> str:
    """`signatures: verified (signed by ...)`, `signatures: unsigned_image: why (rule)`, or unknown."""
    ev = verdict.evidence
    if verdict.status is SignatureStatus.VERIFIED:
        signed = ", ".join(ev.get("signed_by") or []) or "the required attestations"
        return f"signatures: verified (signed by {signed}; {ev.get('rule')})"
    if verdict.status is SignatureStatus.VIOLATION:
        parts = "; ".join(f"{f.type}: {', '.join(f.evidence['failing_checks'])}" for f in verdict.findings)
        return f"signatures: {parts} ({ev.get('rule')})"
    return f"signatures: unknown: {ev.get('reason')} ({ev.get('rule')})"


def policy_exit_code(verdict: SignatureVerdict) -> int:
    if verdict.status is SignatureStatus.VIOLATION:
        return 1
    return 0 if verdict.status is SignatureStatus.VERIFIED else 3
