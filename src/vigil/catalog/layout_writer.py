"""Write OCI image layouts from real files: tar layers (with whiteouts, opaque
directories, links), compressed per layer, plus config, manifest and index.

Used by tests and benchmarks to build images from real parts without a
container engine; streamed to disk, never held in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MEDIA = {
    "": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


class TarLayer:
    """A layer tar being written to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)

    def add_tree(self, src: Path, arcname: str = ".") -> None:
        self._tar.add(src, arcname=arcname, recursive=True)

    def add_path(self, src: Path, arcname: str) -> None:
        self._tar.add(src, arcname=arcname, recursive=True)

    def add_bytes(self, arcname: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(arcname)
        info.size, info.mode = len(data), mode
        self._tar.addfile(info, io.BytesIO(data))

    def add_dir(self, arcname: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(arcname)
        info.type, info.mode = tarfile.DIRTYPE, mode
        self._tar.addfile(info)

    def add_symlink(self, arcname: str, target: str) -> None:
        info = tarfile.TarInfo(arcname)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self._tar.addfile(info)

    def add_hardlink(self, arcname: str, target: str) -> None:
        info = tarfile.TarInfo(arcname)
        info.type, info.linkname = tarfile.LNKTYPE, target
        self._tar.addfile(info)

    def add_whiteout(self, path: str) -> None:
        directory, name = os.path.split(path.strip("/"))
        self.add_bytes(os.path.join(directory, ".wh." + name), b"")

    def add_opaque(self, directory: str) -> None:
        self.add_bytes(os.path.join(directory.strip("/"), ".wh..wh..opq"), b"")

    def close(self) -> None:
        self._tar.close()


@dataclass(frozen=True, slots=True)
class WrittenLayer:
    media_type: str
    digest: str
    diff_id: str
    size: int


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _write_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return digest, len(data)


def _compress(src: Path, dest: Path, compression: str) -> None:
    with src.open("rb") as fin:
        if compression == "gzip":
            with dest.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as out:
                shutil.copyfileobj(fin, out, 1 << 20)
        elif compression == "zstd":
            import zstandard

            with dest.open("wb") as raw:
                zstandard.ZstdCompressor(level=3).copy_stream(fin, raw)
        elif compression == "":
            with dest.open("wb") as out:
                shutil.copyfileobj(fin, out, 1 << 20)
        else:
            raise ValueError(f"compression {compression!r}: use '', 'gzip' or 'zstd'")


def add_layer(layout: Path, tar_path: Path, compression: str) -> WrittenLayer:
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    diff_id = _sha256_file(tar_path)
    tmp = layout / "blobs" / "sha256" / ".incoming"
    _compress(tar_path, tmp, compression)
    digest = _sha256_file(tmp)
    size = tmp.stat().st_size
    tmp.rename(layout / "blobs" / "sha256" / digest[7:])
    return WrittenLayer(_MEDIA[compression], digest, diff_id, size)


def write_image(
    layout: Path, layers: list[WrittenLayer], *, os_name: str = "linux", arch: str = "amd64", ref: str | None = None
) -> dict[str, Any]:
    """Config + manifest for ``layers``; returns the manifest descriptor
    (with platform) without touching index.json (see ``write_index``)."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    config = {
        "architecture": arch,
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "config": {},
    }
    cdigest, csize = _write_blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    mdigest, msize = _write_blob(layout, json.dumps(manifest, sort_keys=True).encode())
    desc = {
        "mediaType": manifest["mediaType"],
        "digest": mdigest,
        "size": msize,
        "platform": {"os": os_name, "architecture": arch},
    }
    if ref:
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref}
    return desc


def write_index(layout: Path, manifests: list[dict[str, Any]]) -> None:
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True))
