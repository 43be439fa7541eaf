"""Finding what signs a digest: the OCI 1.1 referrers API, falling back to cosign's tag scheme.

Returns the raw artifacts (signature manifests and their layers' blobs, capped like other registry
answers); `vigil.signatures` decides what they prove. Manifests and blobs are fetched by digest, so
the client's content cache keeps them: a digest's signatures are fetched once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx

from vigil.model.image import ImageRef, digest_error, parse_image_ref

from .client import RegistryClient, _read_capped
from .errors import DigestMismatch, NotFound, RegistryError
from .transport import Target, raise_for_unexpected

MAX_REFERRERS_BYTES = 1024 * 1024
MAX_ARTIFACTS = 32
MAX_SIGNATURE_BLOB_BYTES = 4 * 1024 * 1024
TAG_SUFFIXES = (".sig", ".att")


@dataclass(frozen=True)
class SignatureArtifact:
    """One signature or attestation manifest of `subject`, with the blobs its layers point at."""

    source: Literal["referrer", "tag"]
    subject: str
    manifest_digest: str
    manifest: bytes = field(repr=False)
    artifact_type: str | None
    blobs: dict[str, bytes] = field(repr=False, default_factory=dict)
    too_large: tuple[str, ...] = ()
    # Blobs the registry served with content that is not their digest's: tampered where they are stored.
    tampered: tuple[str, ...] = ()


@dataclass(frozen=True)
class Discovery:
    artifacts: tuple[SignatureArtifact, ...]
    # Whether the registry answered the referrers API (False: it does not have it, tags were used).
    referrers_api: bool


def cosign_tag(digest: str, suffix: str) -> str:
    """`sha256:<hex>` -> `sha256-<hex><suffix>`, the tag cosign stores signatures and attestations under."""
    return digest.replace(":", "-", 1) + suffix


def _blobs(
    client: RegistryClient, ref: ImageRef, manifest: bytes, limit: int
) -> tuple[dict[str, bytes], tuple[str, ...], tuple[str, ...]]:
    try:
        doc = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        return {}, (), ()
    blobs: dict[str, bytes] = {}
    too_large: list[str] = []
    tampered: list[str] = []
    layers = doc.get("layers") if isinstance(doc, dict) else None
    for layer in layers if isinstance(layers, list) else []:
        if not isinstance(layer, dict):
            continue
        digest = layer.get("digest")
        size = layer.get("size")
        if not isinstance(digest, str) or digest_error(digest) or digest in blobs:
            continue
        if not isinstance(size, int) or size > limit:
            too_large.append(digest)
            continue
        try:
            blobs[digest] = client.fetch_blob(ref, digest, size)
        except DigestMismatch:
            tampered.append(digest)
    return blobs, tuple(too_large), tuple(tampered)


def referrers(
    client: RegistryClient, ref: ImageRef, digest: str, artifact_type: str | None = None
) -> list[dict[str, object]] | None:
    """The referrers index's descriptors for `digest`, or None when the registry has no referrers API."""
    target = Target(ref.registry, ref.repository, digest)
    params = {"artifactType": artifact_type} if artifact_type else None
    response = client.transport.request(
        "GET", target, f"/v2/{ref.repository}/referrers/{digest}", kind="referrers", params=params, stream=True
    )
    try:
        body = _read_capped(response, MAX_REFERRERS_BYTES)
    finally:
        response.close()
    if response.status_code in (404, 405):
        return None
    if response.status_code != 200:
        answer = httpx.Response(
            response.status_code, headers=response.headers, content=body or b"", request=response.request
        )
        raise_for_unexpected(answer, target, "referrers GET")
    if body is None:
        raise RegistryError(
            ref.registry, ref.repository, digest, f"referrers index larger than {MAX_REFERRERS_BYTES} bytes"
        )
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(ref.registry, ref.repository, digest, "the referrers answer is not JSON") from None
    manifests = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(manifests, list):
        raise RegistryError(ref.registry, ref.repository, digest, "the referrers answer is not an image index")
    out = [m for m in manifests if isinstance(m, dict)]
    if artifact_type and response.headers.get("OCI-Filters-Applied", "") != "artifactType":
        # A registry may ignore the filter (it says so by not naming it); filter here then.
        out = [m for m in out if m.get("artifactType") == artifact_type]
    return out


def discover(
    client: RegistryClient,
    image: ImageRef | str,
    digests: Iterable[str],
    *,
    artifact_types: Sequence[str] = (),
    max_artifacts: int = MAX_ARTIFACTS,
    max_blob_bytes: int = MAX_SIGNATURE_BLOB_BYTES,
) -> Discovery:
    """The signatures and attestations of each digest (for an index: the index's and the platform
    manifest's). Referrers first; where the registry lacks the API, cosign's `.sig`/`.att` tags.
    Registry errors other than "not found" propagate (the caller's outcome is unknown)."""
    ref = parse_image_ref(image) if isinstance(image, str) else image
    found: list[SignatureArtifact] = []
    api = True
    for digest in dict.fromkeys(digests):
        listed: list[dict[str, object]] | None = []
        for t in artifact_types or (None,):
            got = referrers(client, ref, digest, t)
            if got is None:
                listed = None
                break
            assert listed is not None
            listed.extend(got)
        if listed is not None:
            for desc in listed[:max_artifacts]:
                mdigest = desc.get("digest")
                if not isinstance(mdigest, str) or digest_error(mdigest):
                    continue
                body, _, mdigest = client.get_manifest_bytes(ref, mdigest)
                blobs, big, bad = _blobs(client, ref, body, max_blob_bytes)
                at = desc.get("artifactType")
                found.append(
                    SignatureArtifact(
                        "referrer", digest, mdigest, body, at if isinstance(at, str) else None, blobs, big, bad
                    )
                )
        else:
            api = False
        for suffix in TAG_SUFFIXES:
            try:
                body, _, mdigest = client.get_manifest_bytes(ref, cosign_tag(digest, suffix))
            except NotFound:
                continue
            if any(a.manifest_digest == mdigest for a in found):
                continue
            blobs, big, bad = _blobs(client, ref, body, max_blob_bytes)
            found.append(SignatureArtifact("tag", digest, mdigest, body, suffix, blobs, big, bad))
        if len(found) >= max_artifacts:
            break
    return Discovery(tuple(found[:max_artifacts]), api)
