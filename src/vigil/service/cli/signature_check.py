"""`vigil image check`'s signature step: discover what signs the running digest, verify it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from vigil.model.image import ImageRef
from vigil.registry import RegistryClient
from vigil.registry.errors import RegistryError
from vigil.registry.signatures import Discovery, discover
from vigil.signatures import bundle, cosign, dsse
from vigil.signatures.certs import IdentityRule
from vigil.signatures.keys import TrustedKey
from vigil.signatures.outcome import Absent, Outcome, Unknown, combine
from vigil.signatures.trustroot import TrustedRoot

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
