"""Reading an OCI image layout directory (image-spec ``image-layout.md``):
``oci-layout``, ``index.json``, content-addressed ``blobs/<alg>/<hex>``."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
_DIGEST = re.compile(r"^(?P<alg>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)$")
_MAX_JSON = 4 << 20


class LayoutError(ValueError):
    """An OCI layout that breaks the image spec; the message names the file and rule."""


@dataclass(frozen=True, slots=True)
class LayerDescriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    manifest_digest: str
    platform: str | None
    config: dict[str, Any]
    layers: list[LayerDescriptor]


def is_oci_layout(path: Path) -> bool:
    return (path / "oci-layout").is_file() and (path / "index.json").is_file()


def blob_path(layout: Path, digest: str) -> Path:
    m = _DIGEST.match(digest)
    if m is None:
        raise LayoutError(f"{layout}: digest {digest!r} is not algorithm:encoded")
    if m["alg"] == "sha256" and not re.fullmatch(r"[a-f0-9]{64}", m["hex"]):
        raise LayoutError(f"{layout}: digest {digest!r}: a sha256 digest is 64 lowercase hex characters")
    return layout / "blobs" / m["alg"] / m["hex"]


def read_json_blob(layout: Path, digest: str) -> dict[str, Any]:
    path = blob_path(layout, digest)
    try:
        data = path.read_bytes() if path.stat().st_size <= _MAX_JSON else None
    except FileNotFoundError:
        raise LayoutError(f"{layout}: blob {digest} is missing") from None
    if data is None:
        raise LayoutError(f"{layout}: blob {digest} is larger than {_MAX_JSON} bytes for a JSON document")
    if digest.startswith("sha256:") and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise LayoutError(f"{layout}: blob {digest} does not match its digest")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise LayoutError(f"{layout}: blob {digest} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise LayoutError(f"{layout}: blob {digest} is not a JSON object")
    return doc


def _platform_string(p: dict[str, Any] | None) -> str | None:
    if not p:
        return None
    s = f"{p.get('os', '')}/{p.get('architecture', '')}"
    return s + (f"/{p['variant']}" if p.get("variant") else "")


def _matches(platform: str, candidate: str | None) -> bool:
    if candidate is None:
        return False
    want, have = platform.split("/"), candidate.split("/")
    if len(want) == 2 and len(have) == 3:
        return want == have[:2]
    return want == have


def _flatten(
    layout: Path, descriptors: list[dict[str, Any]], depth: int = 0
) -> list[tuple[dict[str, Any], str | None]]:
    """(image manifest descriptor, platform) pairs reachable from an index."""
    if depth > 4:
        raise LayoutError(f"{layout}: image indexes nested more than 4 deep")
    out = []
    for d in descriptors:
        mt = d.get("mediaType")
        if mt in INDEX_TYPES:
            nested = read_json_blob(layout, d["digest"])
            out.extend(_flatten(layout, nested.get("manifests", []), depth + 1))
        elif mt in MANIFEST_TYPES:
            out.append((d, _platform_string(d.get("platform"))))
    return out


def resolve_image(layout: Path, platform: str | None = None, ref: str | None = None) -> ResolvedImage:
    try:
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{layout}/index.json: not readable as JSON: {exc}") from None
    top = index.get("manifests", [])
    if ref is not None:
        top = [d for d in top if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref]
        if not top:
            raise LayoutError(f"{layout}: no manifest with ref name {ref!r} in index.json")
    candidates = _flatten(layout, top)
    if platform is not None:
        chosen = [c for c in candidates if _matches(platform, c[1])]
        if not chosen:
            seen = sorted({c[1] or "unspecified" for c in candidates})
            raise LayoutError(f"{layout}: no image for platform {platform}; the layout has {', '.join(seen)}")
    else:
        chosen = candidates
        if len({c[0]["digest"] for c in chosen}) > 1:
            host = [c for c in chosen if _matches("linux/amd64", c[1])]
            if len({c[0]["digest"] for c in host}) == 1:
                chosen = host
            else:
                seen = sorted({c[1] or "unspecified" for c in candidates})
                raise LayoutError(f"{layout}: several images ({', '.join(seen)}); choose a platform or a ref")
    if not chosen:
        raise LayoutError(f"{layout}: index.json lists no image manifest")
    descriptor, plat = chosen[0]
    manifest = read_json_blob(layout, descriptor["digest"])
    config_desc = manifest.get("config") or {}
    config = read_json_blob(layout, config_desc["digest"]) if config_desc.get("digest") else {}
    layers = []
    for n, d in enumerate(manifest.get("layers", [])):
        if not isinstance(d, dict) or "digest" not in d or "mediaType" not in d:
            raise LayoutError(f"{layout}: manifest {descriptor['digest']} layer {n} lacks a digest or media type")
        layers.append(LayerDescriptor(d["mediaType"], d["digest"], int(d.get("size", 0))))
    if plat is None and config.get("os"):
        plat = _platform_string(config)
    return ResolvedImage(descriptor["digest"], plat, config, layers)
