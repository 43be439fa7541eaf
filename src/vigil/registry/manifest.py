"""Manifests and indexes as data: parsing and the platform / same-artifact logic (pure, no I/O)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from vigil.model.image import digest_error

from . import media_types as mt


class InvalidManifest(ValueError):
    """A manifest body that is not JSON or lacks a required field; the message names which."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``os/arch[/variant]``, e.g. ``linux/arm64/v8``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} is not os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, wanted: Platform) -> bool:
        """True when this platform satisfies ``wanted`` (a wanted variant must match)."""
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        return wanted.variant is None or self.variant == wanted.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """A single-platform image manifest (OCI or Docker v2 schema 2)."""

    digest: str
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def artifact_digests(self) -> frozenset[str]:
        return frozenset({self.digest})


@dataclass(frozen=True, slots=True)
class ImageIndex:
    """A multi-platform index (OCI index or Docker manifest list)."""

    digest: str
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def artifact_digests(self) -> frozenset[str]:
        """The index digest and every manifest it lists: all name the same artifact."""
        return frozenset({self.digest, *(m.digest for m in self.manifests)})

    @property
    def platforms(self) -> tuple[Platform, ...]:
        return tuple(m.platform for m in self.manifests if m.platform is not None)

    def manifest_for(self, platform: Platform) -> Descriptor | None:
        """The first manifest for ``platform``, as a runtime picks it; None if there is none."""
        for descriptor in self.manifests:
            if descriptor.platform is not None and descriptor.platform.matches(platform):
                return descriptor
        return None


Manifest = ImageManifest | ImageIndex


def same_artifact(running_digest: str, tag_digest: str, tag_manifest: Manifest | None = None) -> bool:
    """Whether a container running ``running_digest`` runs what the tag points at.

    Equal digests are the same artifact. Otherwise, when the tag points at an
    index, the running digest may be one of its platform manifests (runtimes
    record either, depending on how the image was pulled).
    """
    if running_digest == tag_digest:
        return True
    if tag_manifest is None or tag_manifest.digest != tag_digest:
        return False
    return running_digest in tag_manifest.artifact_digests


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise InvalidManifest(f"{where} is not an object")
    digest = raw.get("digest")
    size = raw.get("size")
    media_type = raw.get("mediaType", "")
    if not isinstance(digest, str) or digest_error(digest):
        raise InvalidManifest(f"{where}.digest {digest!r} is not a valid digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidManifest(f"{where}.size {size!r} is not a non-negative integer")
    if not isinstance(media_type, str):
        raise InvalidManifest(f"{where}.mediaType is not a string")
    platform = None
    raw_platform = raw.get("platform")
    if raw_platform is not None:
        if (
            not isinstance(raw_platform, dict)
            or not isinstance(raw_platform.get("os"), str)
            or not isinstance(raw_platform.get("architecture"), str)
        ):
            raise InvalidManifest(f"{where}.platform needs string os and architecture")
        platform = Platform(
            raw_platform["os"],
            raw_platform["architecture"],
            raw_platform.get("variant") or None,
            raw_platform.get("os.version") or None,
        )
    return Descriptor(media_type, digest, size, platform, _annotations(raw, where))


def _annotations(raw: dict[str, Any], where: str) -> dict[str, str]:
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise InvalidManifest(f"{where}.annotations is not a map of strings")
    return dict(annotations)


def parse_manifest(body: bytes, digest: str, content_type: str | None = None) -> Manifest:
    """Parse a manifest body whose digest is already verified.

    The media type is the body's ``mediaType`` when present (it is what was
    signed and hashed), else the response's Content-Type, else inferred from
    the shape (OCI allows omitting it).
    """
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidManifest(f"manifest is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidManifest("manifest is not a JSON object")
    media_type = doc.get("mediaType") or (content_type or "").split(";")[0].strip()
    if media_type not in mt.MANIFEST_TYPES:
        if "manifests" in doc:
            media_type = mt.OCI_INDEX
        elif "layers" in doc and "config" in doc:
            media_type = mt.OCI_MANIFEST
        else:
            raise InvalidManifest(f"unsupported manifest media type {media_type!r}")
    if media_type in mt.INDEX_TYPES:
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise InvalidManifest("index has no 'manifests' list")
        return ImageIndex(
            digest,
            media_type,
            tuple(_descriptor(m, f"manifests[{i}]") for i, m in enumerate(manifests)),
            _annotations(doc, "index"),
        )
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidManifest("manifest has no 'layers' list")
    return ImageManifest(
        digest,
        media_type,
        _descriptor(doc.get("config"), "config"),
        tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
        _annotations(doc, "manifest"),
    )
