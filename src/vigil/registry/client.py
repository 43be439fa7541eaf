"""The OCI distribution client: manifests, indexes, tags, blobs and image configs, with caches.

Reads only; writes (push, delete) are in ``upload``. Every answer is checked:
manifest bodies against the digest asked for or announced (``Docker-Content-Digest``),
blobs while they stream. Caches:

- content by digest (manifests, configs) never expires, it is immutable; an
  LRU bound keeps memory in check;
- what a tag points at, and whether a digest exists in a repository, are kept
  ``tag_ttl`` seconds: both change when someone pushes or deletes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from vigil.model.image import SUPPORTED_DIGEST_ALGORITHMS, ImageRef, digest_error, parse_image_ref

from . import media_types as mt
from .cache import LRUCache, TTLCache
from .config import RegistryConfig
from .errors import DigestMismatch, NotFound, NotFoundKind, RegistryError
from .manifest import ImageManifest, InvalidManifest, Manifest, Platform, parse_manifest, same_artifact
from .provenance import ImageConfig, Provenance, parse_image_config, provenance_from_labels
from .transport import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    RegistryTransport,
    RequestStats,
    RetryPolicy,
    Target,
    raise_for_unexpected,
    registry_error_text,
    registry_errors,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from .manifest import Descriptor, ImageIndex

DEFAULT_TAG_TTL = 60.0
DEFAULT_PLATFORM = Platform("linux", "amd64")
# Manifests and configs are small; a body this large is refused rather than buffered.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # manifests, indexes and image configs: read streaming, never past it


def _read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """A streamed body, or None once it grows past ``limit`` (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_CODE_KINDS = {
    "MANIFEST_UNKNOWN": NotFoundKind.MANIFEST_UNKNOWN,
    "NAME_UNKNOWN": NotFoundKind.NAME_UNKNOWN,
    "BLOB_UNKNOWN": NotFoundKind.BLOB_UNKNOWN,
    "TAG_INVALID": NotFoundKind.TAG_UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a tag or digest points at in one repository, as the registry says now."""

    registry: str
    repository: str
    reference: str
    digest: str
    media_type: str
    size: int | None

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_TYPES


def _is_digest(reference: str) -> bool:
    return ":" in reference and digest_error(reference) is None


def content_digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _as_ref(image: ImageRef | str) -> ImageRef:
    return image if isinstance(image, ImageRef) else parse_image_ref(image)


class RegistryClient:
    """Talk to any OCI distribution registry; one instance serves many registries."""

    def __init__(
        self,
        config: RegistryConfig | None = None,
        *,
        tag_ttl: float = DEFAULT_TAG_TTL,
        content_cache_entries: int = 4096,
        content_cache_bytes: int = 64 * 1024 * 1024,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: RegistryTransport | None = None,
        max_manifest_bytes: int = MAX_MANIFEST_BYTES,
        **transport_options: Any,
    ) -> None:
        self.max_manifest_bytes = max_manifest_bytes
        self.transport = transport or RegistryTransport(config, timeout=timeout, retry=retry, **transport_options)
        self.tag_cache: TTLCache[Resolved] = TTLCache(tag_ttl, clock=self.transport._clock)
        self.content_cache: LRUCache[Any] = LRUCache(content_cache_entries, content_cache_bytes)

    def _manifest_limit(self) -> str:
        # Named as the scan limit that sets it (vigil.catalog.limits), so the message says what to change.
        return f"max_manifest_bytes (VIGIL_SCAN_MAX_MANIFEST_BYTES={self.max_manifest_bytes})"

    @property
    def stats(self) -> RequestStats:
        return self.transport.stats

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.transport!r})"

    # -- resolution ---------------------------------------------------------------------------

    def resolve(self, image: ImageRef | str, reference: str | None = None, *, fetch_body: bool = False) -> Resolved:
        """What ``reference`` (default: the image's digest, else its tag) points at now.

        A HEAD suffices: the registry announces the digest. With ``fetch_body`` a
        caller that will read the manifest next (provenance) asks with a GET
        instead, for the same cost to the registry, and the body waits in the
        content cache. Cached ``tag_ttl`` seconds for tags and for digests alike
        (a digest can be deleted).
        """
        ref = _as_ref(image)
        reference = reference or ref.pull_reference
        key = (ref.registry, ref.repository, reference)
        cached = self.tag_cache.get(key)
        if cached is not None:
            self.stats.hit("tag")
            return cached
        if fetch_body:
            resolved = self._resolve_by_get(ref, reference)
            self.tag_cache.put(key, resolved)
            return resolved
        target, response = self._manifest_request("HEAD", ref, reference, "manifest_head")
        announced = response.headers.get("Docker-Content-Digest")
        if response.status_code == 200 and announced and not digest_error(announced):
            if _is_digest(reference) and announced != reference:
                raise DigestMismatch(ref.registry, ref.repository, reference, reference, announced)
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            size = (
                int(response.headers["Content-Length"])
                if response.headers.get("Content-Length", "").isdigit()
                else None
            )
            resolved = Resolved(ref.registry, ref.repository, reference, announced, media_type, size)
        elif response.status_code in (200, 404, 405):
            # No digest announced (some proxies strip it), HEAD not allowed, or a
            # 404 whose reason a HEAD cannot carry: the GET tells us.
            resolved = self._resolve_by_get(ref, reference)
        else:
            raise_for_unexpected(response, target, "manifest HEAD")
            raise AssertionError("unreachable")  # pragma: no cover
        self.tag_cache.put(key, resolved)
        return resolved

    def resolve_tag(self, image: ImageRef | str, tag: str | None = None) -> str:
        """The digest the tag points at now (HEAD, cached ``tag_ttl``)."""
        ref = _as_ref(image)
        return self.resolve(ref, tag or ref.tag or "latest").digest

    def _resolve_by_get(self, ref: ImageRef, reference: str) -> Resolved:
        # Whether the registry holds it *now*: content cached by digest must not answer that,
        # or a manifest deleted after we once fetched it would look present forever.
        body, media_type, digest = self._get_manifest_bytes(ref, reference, use_content_cache=False)
        return Resolved(ref.registry, ref.repository, reference, digest, media_type, len(body))

    def invalidate(self, image: ImageRef | str, reference: str | None = None) -> None:
        """Forget what a tag or digest resolved to (after a push or delete we made)."""
        ref = _as_ref(image)
        self.tag_cache.invalidate((ref.registry, ref.repository, reference or ref.pull_reference))

    def forget_digest(self, image: ImageRef | str, digest: str) -> None:
        """Forget every cached tag of the repository that resolved to ``digest``."""
        ref = _as_ref(image)
        self.tag_cache.invalidate_where(
            lambda key, resolved: (
                isinstance(key, tuple) and key[:2] == (ref.registry, ref.repository) and resolved.digest == digest
            )
        )

    # -- manifests ----------------------------------------------------------------------------

    def get_manifest(self, image: ImageRef | str, reference: str | None = None) -> Manifest:
        """The manifest or index for a tag or digest, verified; content cached by digest."""
        ref = _as_ref(image)
        reference = reference or ref.pull_reference
        if not _is_digest(reference):
            cached = self.tag_cache.get((ref.registry, ref.repository, reference))
            if cached is not None:
                self.stats.hit("tag")
                reference = cached.digest
        body, media_type, digest = self._get_manifest_bytes(ref, reference)
        try:
            return parse_manifest(body, digest, media_type)
        except InvalidManifest as exc:
            raise RegistryError(ref.registry, ref.repository, reference, f"invalid manifest {digest}: {exc}") from None

    def get_manifest_bytes(self, image: ImageRef | str, reference: str | None = None) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest, verified; exactly the bytes the registry holds."""
        ref = _as_ref(image)
        return self._get_manifest_bytes(ref, reference or ref.pull_reference)

    def _get_manifest_bytes(
        self, ref: ImageRef, reference: str, use_content_cache: bool = True
    ) -> tuple[bytes, str, str]:
        by_digest = _is_digest(reference)
        content_key = ("manifest", ref.registry, ref.repository, reference)
        if by_digest and use_content_cache:
            cached: tuple[bytes, str, str] | None = self.content_cache.get(content_key)
            if cached is not None:
                self.stats.hit("content")
                return cached
        target, response = self._manifest_request("GET", ref, reference, "manifest_get", stream=True)
        try:
            body = _read_capped(response, self.max_manifest_bytes)
        finally:
            response.close()
        if response.status_code != 200:
            # The error's text, for the message: read as capped as a manifest.
            answer = httpx.Response(
                response.status_code, headers=response.headers, content=body or b"", request=response.request
            )
            if answer.status_code == 404:
                raise self._not_found(answer, target, "manifest")
            raise_for_unexpected(answer, target, "manifest GET")
        if body is None:
            raise RegistryError(
                ref.registry,
                ref.repository,
                reference,
                f"manifest larger than the limit {self._manifest_limit()}; not read further",
            )
        announced = response.headers.get("Docker-Content-Digest")
        expected = reference if by_digest else announced
        if expected is not None and digest_error(expected) is None:
            algorithm = expected.split(":", 1)[0]
            actual = content_digest(body, algorithm)
            if actual != expected:
                raise DigestMismatch(ref.registry, ref.repository, reference, expected, actual)
        digest = expected if expected and digest_error(expected) is None else content_digest(body)
        if by_digest and announced and digest_error(announced) is None and announced != digest:
            # The body matches what we asked for, but the registry names it otherwise: it is lying or broken.
            raise DigestMismatch(ref.registry, ref.repository, reference, digest, announced)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        result = (body, media_type, digest)
        self.content_cache.put(("manifest", ref.registry, ref.repository, digest), result, len(body))
        if not by_digest:
            self.tag_cache.put(
                (ref.registry, ref.repository, reference),
                Resolved(ref.registry, ref.repository, reference, digest, media_type, len(body)),
            )
        return result

    def _manifest_request(
        self, method: str, ref: ImageRef, reference: str, kind: str, stream: bool = False
    ) -> tuple[Target, httpx.Response]:
        target = Target(ref.registry, ref.repository, reference)
        path = f"/v2/{ref.repository}/manifests/{reference}"
        response = self.transport.request(
            method, target, path, kind=kind, headers={"Accept": mt.MANIFEST_ACCEPT}, stream=stream
        )
        return target, response

    def _not_found(self, response: httpx.Response, target: Target, what: str) -> NotFound:
        codes = [str(e.get("code", "")) for e in registry_errors(response)]
        kind = next((_CODE_KINDS[c] for c in codes if c in _CODE_KINDS), None)
        if kind is None:
            kind = NotFoundKind.BLOB_UNKNOWN if what == "blob" else NotFoundKind.MANIFEST_UNKNOWN
        if kind == NotFoundKind.MANIFEST_UNKNOWN and what == "manifest" and self._repository_unknown(target):
            # distribution answers MANIFEST_UNKNOWN even when the whole repository
            # is absent; the tags list tells the two apart (only on this error path).
            kind = NotFoundKind.NAME_UNKNOWN
        if kind == NotFoundKind.MANIFEST_UNKNOWN and target.reference and not _is_digest(target.reference):
            kind = NotFoundKind.TAG_UNKNOWN
        detail = registry_error_text(response).strip(" ()")
        detail = f"registry answered {response.status_code} {detail}".rstrip()
        return NotFound(target.registry, target.repository, target.reference, detail, kind)

    def _repository_unknown(self, target: Target) -> bool:
        try:
            response = self.transport.request(
                "GET",
                Target(target.registry, target.repository, None),
                f"/v2/{target.repository}/tags/list",
                kind="tags",
                params={"n": "1"},
            )
        except RegistryError:
            return False
        return response.status_code == 404 and any(e.get("code") == "NAME_UNKNOWN" for e in registry_errors(response))

    # -- indexes ------------------------------------------------------------------------------

    def platform_manifest(
        self, image: ImageRef | str, reference: str | None = None, platform: Platform = DEFAULT_PLATFORM
    ) -> ImageManifest:
        """The image manifest a runtime on ``platform`` would run for this reference."""
        ref = _as_ref(image)
        manifest = self.get_manifest(ref, reference)
        if isinstance(manifest, ImageManifest):
            return manifest
        return self.index_entry(ref, manifest, platform, reference)[0]

    def index_entry(
        self, ref: ImageRef, index: ImageIndex, platform: Platform, reference: str | None = None
    ) -> tuple[ImageManifest, Descriptor]:
        """The image manifest ``index`` (fetched for ``reference``) lists for ``platform``, with its entry."""
        descriptor = index.manifest_for(platform)
        if descriptor is None:
            available = ", ".join(str(p) for p in index.platforms) or "none"
            raise NotFound(
                ref.registry,
                ref.repository,
                reference or ref.pull_reference,
                f"index {index.digest} has no manifest for {platform} (has: {available})",
                NotFoundKind.MANIFEST_UNKNOWN,
            )
        child = self.get_manifest(ref, descriptor.digest)
        if not isinstance(child, ImageManifest):
            raise RegistryError(
                ref.registry, ref.repository, descriptor.digest, "platform entry of an index is itself an index"
            )
        return child, descriptor

    def same_artifact(self, image: ImageRef | str, running_digest: str, tag_digest: str | None = None) -> bool:
        """Whether ``running_digest`` is what the tag points at: the same digest, or, when
        the tag points at an index, one of its platform manifests."""
        ref = _as_ref(image)
        if tag_digest is None:
            tag_digest = self.resolve_tag(ref)
        if running_digest == tag_digest:
            return True
        return same_artifact(running_digest, tag_digest, self.get_manifest(ref, tag_digest))

    # -- tags ---------------------------------------------------------------------------------

    def iter_tags(self, image: ImageRef | str, page_size: int | None = None) -> Iterator[str]:
        """Every tag of the repository, following ``Link: <...>; rel="next"`` pages."""
        ref = _as_ref(image)
        target = Target(ref.registry, ref.repository, None)
        path: str | None = f"/v2/{ref.repository}/tags/list"
        params = {"n": str(page_size)} if page_size else None
        seen: set[str] = set()
        while path is not None:
            if path in seen:
                raise RegistryError(ref.registry, ref.repository, None, f"tag pagination loops back to {path}")
            seen.add(path)
            response = self.transport.request("GET", target, path, kind="tags", params=params)
            if response.status_code == 404:
                raise self._not_found(response, target, "repository")
            raise_for_unexpected(response, target, "tags list")
            try:
                tags = response.json().get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(ref.registry, ref.repository, None, "tags list is not a JSON object") from None
            yield from (t for t in tags if isinstance(t, str))
            path = _next_link(response)
            params = None  # the next link carries n and last itself

    def list_tags(self, image: ImageRef | str, page_size: int | None = None) -> list[str]:
        return list(self.iter_tags(image, page_size))

    # -- blobs and configs --------------------------------------------------------------------

    def open_blob(self, image: ImageRef | str, digest: str, size: int | None = None) -> BlobReader:
        """A streaming, verifying reader of one blob; the caller closes it (or uses ``with``)."""
        ref = _as_ref(image)
        problem = digest_error(digest)
        if problem:
            raise ValueError(f"blob digest {digest!r}: {problem}")
        target = Target(ref.registry, ref.repository, digest)
        response = self.transport.request(
            "GET", target, f"/v2/{ref.repository}/blobs/{digest}", kind="blob", stream=True, follow_redirects=True
        )
        if response.status_code != 200:
            response.read()
            response.close()
            if response.status_code == 404:
                raise self._not_found(response, target, "blob")
            raise_for_unexpected(response, target, "blob GET")
        return BlobReader(response, target, digest, size)

    def fetch_blob(self, image: ImageRef | str, digest: str, size: int | None = None) -> bytes:
        with self.open_blob(image, digest, size) as reader:
            return reader.read()

    def get_config(self, image: ImageRef | str, manifest: ImageManifest) -> ImageConfig:
        """The image config of ``manifest``, verified and cached by digest."""
        ref = _as_ref(image)
        key = ("config", ref.registry, ref.repository, manifest.config.digest)
        cached: ImageConfig | None = self.content_cache.get(key)
        if cached is not None:
            self.stats.hit("content")
            return cached
        if manifest.config.size > self.max_manifest_bytes:
            raise RegistryError(
                ref.registry,
                ref.repository,
                manifest.config.digest,
                f"image config of {manifest.config.size} bytes is over the limit {self._manifest_limit()}",
            )
        # The size in the manifest binds the read: the blob reader stops past it (DigestMismatch).
        body = self.fetch_blob(ref, manifest.config.digest, manifest.config.size)
        try:
            config = parse_image_config(body, manifest.config.digest)
        except ValueError as exc:
            raise RegistryError(ref.registry, ref.repository, manifest.config.digest, str(exc)) from None
        self.content_cache.put(key, config, len(body))
        return config

    def provenance(
        self, image: ImageRef | str, reference: str | None = None, platform: Platform = DEFAULT_PLATFORM
    ) -> Provenance:
        """OCI provenance labels of the image (its ``platform`` manifest when it is an index)."""
        ref = _as_ref(image)
        manifest = self.platform_manifest(ref, reference, platform)
        config = self.get_config(ref, manifest)
        return provenance_from_labels(config.labels, manifest.annotations)


def _next_link(response: httpx.Response) -> str | None:
    header: str | None = response.headers.get("Link")
    if not header:
        return None
    for part in header.split(","):
        url, _, attributes = part.partition(";")
        if 'rel="next"' in attributes.replace(" ", "") or "rel=next" in attributes.replace(" ", ""):
            url = url.strip()
            if url.startswith("<") and url.endswith(">"):
                return url[1:-1]
    return None


class BlobReader(io.RawIOBase):
    """A blob as a file-like object and a chunk iterator, hashed as it streams.

    Reaching the end checks size and digest and raises DigestMismatch if they
    differ, so a consumer that reads to the end never accepts tampered content
    silently. Closing early skips the check (nothing was fully consumed).
    """

    def __init__(self, response: httpx.Response, target: Target, digest: str, size: int | None) -> None:
        super().__init__()
        self._response = response
        self._target = target
        self.digest = digest
        self.expected_size = size
        algorithm = digest.split(":", 1)[0]
        if algorithm not in SUPPORTED_DIGEST_ALGORITHMS:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        self._algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self._chunks = response.iter_raw(64 * 1024)
        self._pending = b""
        self.bytes_read = 0
        self.verified = False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._finish()
            return b""
        except httpx.HTTPError as exc:
            self.close()
            raise RegistryError(
                self._target.registry, self._target.repository, self.digest, f"blob download broke off: {exc}"
            ) from None
        self._hash.update(chunk)
        self.bytes_read += len(chunk)
        if self.expected_size is not None and self.bytes_read > self.expected_size:
            self.close()
            raise DigestMismatch(
                self._target.registry,
                self._target.repository,
                self.digest,
                self.digest,
                None,
                f"blob is longer than the expected {self.expected_size} bytes",
            )
        return chunk

    def _finish(self) -> None:
        if self.verified:
            return
        actual = f"{self._algorithm}:{self._hash.hexdigest()}"
        self._response.close()
        if actual != self.digest or (self.expected_size is not None and self.bytes_read != self.expected_size):
            raise DigestMismatch(self._target.registry, self._target.repository, self.digest, self.digest, actual)
        self.verified = True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self.closed:
            raise ValueError("read from a closed blob")
        while not self._pending:
            if self.verified:
                return 0
            self._pending = self._next_chunk()
            if not self._pending and self.verified:
                return 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def iter_chunks(self) -> Iterator[bytes]:
        """Chunks as they arrive; the digest is verified before the iteration ends."""
        try:
            if self._pending:
                chunk, self._pending = self._pending, b""
                yield chunk
            while not self.verified:
                chunk = self._next_chunk()
                if chunk:
                    yield chunk
        finally:
            self.close()

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_chunks()

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()
