"""Build OCI images in Python, write them as an OCI layout, push them to a registry.

For tests across Vigil (registry, catalog, sensor, containerd): images are
made from real files or bytes, byte-for-byte reproducible (fixed mtimes,
owners, ordering, gzip header), so a digest computed once stays valid.

    layer = tar_layer({"bin/hello": LayerFile(b"#!/bin/sh\\necho hi\\n", mode=0o755)})
    image = build_image([layer], labels={"org.opencontainers.image.source": "https://git.example/app"})
    index = build_index([image, build_image([layer], platform="linux/arm64/v8")])
    write_oci_layout(tmp_path / "layout", index, tag="1.0")    # for skopeo/ctr import
    with RegistryClient(config) as client:
        digest = push(client, "127.0.0.1:5000/team/app:1.0", index)
        delete_manifest(client, "127.0.0.1:5000/team/app", digest)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vigil.model.image import ImageRef, parse_image_ref
from vigil.registry import RegistryClient, RegistryWriter
from vigil.registry import media_types as mt
from vigil.registry.manifest import Platform

# 2000-01-01T00:00:00Z: a fixed time keeps layers and configs reproducible.
EPOCH = 946684800
CREATED = "2000-01-01T00:00:00Z"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """Bytes with their media type; what a descriptor points at."""

    media_type: str
    data: bytes = field(repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: object) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        out.update(extra)
        return out


@dataclass(frozen=True)
class LayerFile:
    """One entry of a layer: a regular file (``data``), a directory, or a symlink (``linkname``)."""

    data: bytes = b""
    mode: int = 0o644
    kind: str = "file"  # "file" | "dir" | "symlink" | "whiteout"
    linkname: str = ""


@dataclass(frozen=True)
class Layer:
    blob: Blob
    diff_id: str  # sha256 of the uncompressed tar, as the config's rootfs lists it
    files: tuple[str, ...]


def _tar_bytes(entries: Mapping[str, LayerFile]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # parent directories first, so extractors create them with sane modes
        names = dict(entries)
        for path in list(names):
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                names.setdefault("/".join(parts[:i]), LayerFile(kind="dir", mode=0o755))
        for path in sorted(names):
            entry = names[path]
            name = path.strip("/")
            if entry.kind == "whiteout":
                parent, _, base = name.rpartition("/")
                name = f"{parent}/.wh.{base}" if parent else f".wh.{base}"
            info = tarfile.TarInfo(name)
            info.mtime = EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = entry.mode
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.linkname
                tar.addfile(info)
            elif entry.kind in ("file", "whiteout"):
                data = entry.data if entry.kind == "file" else b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                raise ValueError(f"layer entry {path!r}: unknown kind {entry.kind!r}")
    return buffer.getvalue()


def tar_layer(files: Mapping[str, bytes | LayerFile], *, compress: bool = True) -> Layer:
    """A layer from in-memory files: ``{"etc/os-release": b"...", "bin/sh": LayerFile(..., mode=0o755)}``."""
    entries = {path: f if isinstance(f, LayerFile) else LayerFile(f) for path, f in files.items()}
    for path in entries:
        if path.startswith("/") or ".." in path.split("/") or not path.strip("/"):
            raise ValueError(f"layer path {path!r} must be relative, without '..'")
    raw = _tar_bytes(entries)
    if compress:
        data = gzip.compress(raw, mtime=0)
        media_type = mt.OCI_LAYER_GZIP
    else:
        data, media_type = raw, mt.OCI_LAYER
    return Layer(Blob(media_type, data), sha256(raw), tuple(sorted(entries)))


def layer_from_paths(paths: Mapping[str, str | os.PathLike], *, compress: bool = True) -> Layer:
    """A layer from real files on disk: ``{"bin/busybox": "/bin/busybox"}`` (mode kept, symlinks followed)."""
    files: dict[str, LayerFile] = {}
    for target, source in paths.items():
        source = Path(source)
        files[target] = LayerFile(source.read_bytes(), mode=source.stat().st_mode & 0o7777)
    return tar_layer(files, compress=compress)


def layer_from_dir(root: str | os.PathLike, *, prefix: str = "", compress: bool = True) -> Layer:
    """A layer holding every file, directory and symlink under ``root`` (paths relative to it)."""
    root = Path(root)
    files: dict[str, LayerFile] = {}
    for path in sorted(root.rglob("*")):
        name = (Path(prefix) / path.relative_to(root)).as_posix()
        if path.is_symlink():
            files[name] = LayerFile(kind="symlink", linkname=os.readlink(path), mode=0o777)
        elif path.is_dir():
            files[name] = LayerFile(kind="dir", mode=path.stat().st_mode & 0o7777)
        elif path.is_file():
            files[name] = LayerFile(path.read_bytes(), mode=path.stat().st_mode & 0o7777)
    return tar_layer(files, compress=compress)


@dataclass(frozen=True)
class Image:
    """A single-platform image: its layers, config and manifest blobs."""

    layers: tuple[Layer, ...]
    config: Blob
    manifest: Blob
    platform: Platform

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> list[Blob]:
        return [layer.blob for layer in self.layers] + [self.config]


@dataclass(frozen=True)
class Index:
    """A multi-platform index over images."""

    images: tuple[Image, ...]
    manifest: Blob

    @property
    def digest(self) -> str:
        return self.manifest.digest


def build_image(
    layers: Sequence[Layer],
    *,
    labels: Mapping[str, str] | None = None,
    platform: str | Platform = "linux/amd64",
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    created: str = CREATED,
    docker_media_types: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """Config + manifest for ``layers`` (OCI media types, or Docker v2 schema 2 with ``docker_media_types``)."""
    if isinstance(platform, str):
        platform = Platform.parse(platform)
    inner: dict = {"Env": list(env)}
    if labels:
        inner["Labels"] = dict(labels)
    if entrypoint:
        inner["Entrypoint"] = list(entrypoint)
    if cmd:
        inner["Cmd"] = list(cmd)
    config_doc: dict = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": "vigil.devtools.oci"} for _ in layers],
    }
    if platform.variant:
        config_doc["variant"] = platform.variant
    config = Blob(mt.DOCKER_CONFIG if docker_media_types else mt.OCI_CONFIG, canonical_json(config_doc))
    layer_descriptors = []
    for layer in layers:
        descriptor = layer.blob.descriptor()
        if docker_media_types:
            if layer.blob.media_type != mt.OCI_LAYER_GZIP:
                raise ValueError("Docker v2 manifests need gzip layers")
            descriptor["mediaType"] = mt.DOCKER_LAYER_GZIP
        layer_descriptors.append(descriptor)
    manifest_type = mt.DOCKER_MANIFEST if docker_media_types else mt.OCI_MANIFEST
    manifest_doc: dict = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.descriptor(),
        "layers": layer_descriptors,
    }
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    return Image(tuple(layers), config, Blob(manifest_type, canonical_json(manifest_doc)), platform)


def _platform_doc(platform: Platform) -> dict:
    doc = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        doc["variant"] = platform.variant
    return doc


def build_index(images: Sequence[Image], *, annotations: Mapping[str, str] | None = None) -> Index:
    """An index over ``images`` (an OCI index, or a Docker manifest list if the images are Docker v2)."""
    if not images:
        raise ValueError("an index needs at least one image")
    docker = all(image.manifest.media_type == mt.DOCKER_MANIFEST for image in images)
    media_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    doc: dict = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [image.manifest.descriptor(platform=_platform_doc(image.platform)) for image in images],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return Index(tuple(images), Blob(media_type, canonical_json(doc)))


def _all_blobs(artifact: Image | Index) -> Iterable[Blob]:
    images = artifact.images if isinstance(artifact, Index) else (artifact,)
    for image in images:
        yield from image.blobs()
        yield image.manifest
    if isinstance(artifact, Index):
        yield artifact.manifest


def write_oci_layout(directory: str | os.PathLike, artifact: Image | Index, *, tag: str | None = None) -> Path:
    """Write an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/``) and return its path."""
    directory = Path(directory)
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in _all_blobs(artifact):
        (blobs / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    top = artifact.manifest.descriptor()
    if tag:
        top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [top]}
    (directory / "index.json").write_text(json.dumps(index, indent=2))
    return directory


def push(client: RegistryClient, reference: str | ImageRef, artifact: Image | Index) -> str:
    """Push every blob, every manifest (by digest) and the top manifest under the reference's tag.

    Returns the digest of the top manifest (the index for an Index). A
    reference without a tag pushes by digest only.
    """
    ref = parse_image_ref(reference) if isinstance(reference, str) else reference
    writer = RegistryWriter(client)
    images = artifact.images if isinstance(artifact, Index) else (artifact,)
    for image in images:
        for blob in image.blobs():
            writer.push_blob(ref, blob.data, blob.digest)
        if isinstance(artifact, Index):
            writer.put_manifest(ref, image.digest, image.manifest.data, image.manifest.media_type)
    top = artifact.manifest
    writer.put_manifest(ref, ref.tag if ref.tag and not ref.digest else top.digest, top.data, top.media_type)
    return top.digest


def delete_manifest(client: RegistryClient, reference: str | ImageRef, digest: str) -> None:
    """Delete the manifest ``digest`` from the reference's repository (its tags go with it)."""
    ref = parse_image_ref(reference) if isinstance(reference, str) else reference
    RegistryWriter(client).delete_manifest(ref, digest)
