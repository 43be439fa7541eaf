"""Layer blob decompression, chosen by media type (sniffed when unknown)."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class UnsupportedLayer(ValueError):
    pass


class ByteSource(Protocol):
    """What a layer is read from: a blob's response body, a decompressor, a buffered reader."""

    def read(self, size: int = -1, /) -> bytes: ...


class HashingReader(io.RawIOBase):
    """Pass-through reader that hashes and counts what goes through it, so a
    blob's digest is known after one streaming read."""

    def __init__(self, raw: ByteSource, progress: Callable[[int], None] | None = None) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self._progress = progress
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: WriteableBuffer) -> int:
        view = memoryview(buf).cast("B")
        data = self._raw.read(len(view))
        n = len(data)
        view[:n] = data
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


def open_decompressed(media_type: str, raw: io.RawIOBase) -> ByteSource:
    kind = compression_of(media_type)
    buffered = io.BufferedReader(raw, 1 << 16)
    if kind is None:
        head = buffered.peek(4)[:4]
        if head.startswith(GZIP_MAGIC):
            kind = "gzip"
        elif head.startswith(ZSTD_MAGIC):
            kind = "zstd"
        else:
            kind = ""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=buffered, mode="rb")
    if kind == "zstd":
        try:
            import zstandard
        except ImportError as exc:  # pragma: no cover - zstandard is a dependency
            raise UnsupportedLayer(f"layer media type {media_type!r}: zstd needs the 'zstandard' package") from exc
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered
