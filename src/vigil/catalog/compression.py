"""Layer blob decompression, chosen by media type (sniffed when unknown)."""

from __future__ import annotations

import gzip
import hashlib
import io
from typing import BinaryIO, Callable

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class UnsupportedLayer(ValueError):
    pass


class HashingReader(io.RawIOBase):
    """Pass-through reader that hashes and counts what goes through it, so a
    blob's digest is known after one streaming read."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None] | None = None) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self._progress = progress
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        data = self._raw.read(len(buf))
        n = len(data)
        buf[:n] = data
        self._hash.update(data)
        self.count += n
        if self._progress is not None:
            self._progress(self.count)
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size) if size is not None and size >= 0 else self._raw.read()
        self._hash.update(data)
        self.count += len(data)
        if self._progress is not None:
            self._progress(self.count)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def compression_of(media_type: str) -> str | None:
    """'gzip', 'zstd', '' (plain tar) or None when the media type says nothing."""
    mt = media_type.lower()
    if mt.endswith("+gzip") or mt.endswith(".tar.gzip") or mt.endswith("gzip"):
        return "gzip"
    if mt.endswith("+zstd") or mt.endswith("zstd"):
        return "zstd"
    if mt.endswith(".tar") or mt.endswith("rootfs.diff.tar"):
        return ""
    return None


def open_decompressed(media_type: str, raw: BinaryIO) -> BinaryIO:
    kind = compression_of(media_type)
    buffered = io.BufferedReader(raw, 1 << 16) if not isinstance(raw, io.BufferedReader) else raw  # type: ignore[arg-type]
    if kind is None:
        head = buffered.peek(4)[:4]
        if head.startswith(GZIP_MAGIC):
            kind = "gzip"
        elif head.startswith(ZSTD_MAGIC):
            kind = "zstd"
        else:
            kind = ""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        try:
            import zstandard
        except ImportError as exc:  # pragma: no cover - zstandard is a dependency
            raise UnsupportedLayer(f"layer media type {media_type!r}: zstd needs the 'zstandard' package") from exc
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)  # type: ignore[return-value]
    return buffered  # type: ignore[return-value]
