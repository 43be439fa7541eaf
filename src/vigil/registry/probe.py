"""Asking the trusted registry about one running image (I/O), with as few requests as the answer needs.

A clean image costs one HEAD (the tag's digest equals the running digest), or
none while the client's tag cache holds the answer (a GET in place of the HEAD when
the manifest is wanted next, for provenance); an index adds one GET of the
index, cached by digest forever; only when the tag points elsewhere is the
running digest looked up as well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vigil.model.image import ImageRef
from vigil.registry import (
    AuthError,
    ImageIndex,
    NotFound,
    Provenance,
    RegistryClient,
    RegistryError,
    Resolved,
    Unreachable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RegistryAnswer:
    """What the registry said about one running image, gathered by ``probe``.

    ``error`` set means the registry could not tell (the verdict is unknown);
    otherwise each field is the registry's answer to one question, None when the
    question was not asked (it was not needed).
    """

    tag_digest: str | None = None
    tag_artifacts: frozenset[str] = frozenset()  # every digest that names what the tag points at
    tag_missing: str | None = None  # the registry's words when the tag (or repository) is absent
    digest_present: bool | None = None
    digest_missing: str | None = None
    error: str | None = None
    error_kind: str | None = None  # auth | unreachable | registry


def error_kind(exc: RegistryError) -> str:
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, Unreachable):
        return "unreachable"
    return "registry"


def _failed(exc: RegistryError) -> RegistryAnswer:
    # RegistryError messages name registry, repository and reference, never credentials.
    return RegistryAnswer(error=str(exc), error_kind=error_kind(exc))


def _resolve(client: RegistryClient, repo: ImageRef, reference: str, with_manifest: bool) -> Resolved:
    if with_manifest:
        try:
            return client.resolve(repo, reference, fetch_body=True)
        except RegistryError as exc:
            if type(exc) is not RegistryError:
                raise  # absent, refused, unreachable or lying: the HEAD would say the same
            # The body could not be taken (over the manifest size limit, an odd status): the
            # verdict needs only the digest, which a HEAD still gets.
    return client.resolve(repo, reference)


def probe(
    client: RegistryClient, effective: ImageRef, running_digest: str, *, with_manifest: bool = False
) -> RegistryAnswer:
    """What the registry holds for ``effective`` (registry, repository and tag) and ``running_digest``.

    ``with_manifest``: the caller reads the running digest's manifest next (provenance of a
    digest not seen before), so the registry is asked with GETs whose bodies the client keeps,
    in place of HEADs.
    """
    repo = ImageRef(effective.registry, effective.repository, effective.tag, None)
    tag_digest = None
    artifacts: frozenset[str] = frozenset()
    tag_missing = None
    if effective.tag is not None:
        try:
            resolved = _resolve(client, repo, effective.tag, with_manifest)
        except NotFound as exc:
            tag_missing = str(exc)
        except RegistryError as exc:
            return _failed(exc)
        else:
            tag_digest = resolved.digest
            if running_digest == tag_digest:
                return RegistryAnswer(tag_digest=tag_digest, tag_artifacts=frozenset({tag_digest}))
            if resolved.is_index:
                try:
                    index = client.get_manifest(repo, tag_digest)
                except RegistryError as exc:
                    return _failed(exc)
                if isinstance(index, ImageIndex):
                    artifacts = index.artifact_digests
                if running_digest in artifacts:
                    return RegistryAnswer(tag_digest=tag_digest, tag_artifacts=artifacts)
    try:
        _resolve(client, repo, running_digest, with_manifest)
    except NotFound as exc:
        return RegistryAnswer(tag_digest, artifacts, tag_missing, False, str(exc))
    except RegistryError as exc:
        return _failed(exc)
    return RegistryAnswer(tag_digest, artifacts, tag_missing, True, None)


def fetch_provenance(client: RegistryClient, effective: ImageRef, digest: str) -> Provenance | None:
    """OCI labels of the image ``digest`` names (its linux/amd64 manifest for an index); None if unavailable."""
    repo = ImageRef(effective.registry, effective.repository, None, digest)
    try:
        return client.provenance(repo, digest)
    except RegistryError as exc:
        log.warning("provenance not recorded", extra={"image": str(repo), "error": str(exc)})
        return None
