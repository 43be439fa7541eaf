"""Provenance from an image config's OCI labels (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
CREATED = "org.opencontainers.image.created"
AUTHORS = "org.opencontainers.image.authors"
VERSION = "org.opencontainers.image.version"


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config Vigil uses."""

    digest: str
    os: str | None
    architecture: str | None
    variant: str | None
    created: str | None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    diff_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an image was built from and by whom, per its OCI labels (None when absent)."""

    source: str | None
    revision: str | None
    created: str | None
    authors: str | None
    version: str | None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


def parse_image_config(body: bytes, digest: str) -> ImageConfig:
    try:
        doc: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"image config {digest} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"image config {digest} is not a JSON object")
    inner = doc.get("config") or {}
    labels = inner.get("Labels") or {} if isinstance(inner, dict) else {}
    if not isinstance(labels, dict):
        raise ValueError(f"image config {digest}: config.Labels is not a map")
    rootfs = doc.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") or [] if isinstance(rootfs, dict) else []
    return ImageConfig(
        digest=digest,
        os=doc.get("os"),
        architecture=doc.get("architecture"),
        variant=doc.get("variant"),
        created=doc.get("created"),
        labels={str(k): str(v) for k, v in labels.items()},
        diff_ids=tuple(str(d) for d in diff_ids),
    )


def provenance_from_labels(labels: dict[str, str], annotations: dict[str, str] | None = None) -> Provenance:
    """Labels from the config win; manifest annotations of the same keys fill gaps."""
    merged = {**(annotations or {}), **labels}
    return Provenance(
        source=merged.get(SOURCE),
        revision=merged.get(REVISION),
        created=merged.get(CREATED),
        authors=merged.get(AUTHORS),
        version=merged.get(VERSION),
        labels=dict(labels),
    )
