"""The package headers in rpm's ndb database, ``Packages.db`` (SUSE: SLES 15, openSUSE).

Layout (rpm's ``lib/backend/ndb/rpmpkg.c``; all numbers little-endian u32): a 32-byte header,
magic ``RpmP``, format version 0, generation, the number of 4 KiB slot pages; then the slots, 16
bytes each, filling the slot pages after the header: magic ``Slot``, package index (0: a free
slot), offset and length of the package's block in 16-byte units. A block is a 16-byte blob
header (magic ``BlbS``, package index, generation, blob length), the blob (the rpm header), zero
padding, and a 12-byte tail: the Adler-32 of everything in the block before the tail, the blob
length again, magic ``BlbE``.

Pure parsing over a bytes-like object. Every count, offset and length is checked against the
file before it is used, and each blob's checksum is verified, so a corrupt slot or block is an
error about that package and the others are still read.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

_MAGIC = b"RpmP"
_SLOT_MAGIC = b"Slot"
_BLOB_MAGIC = b"BlbS"
_TAIL_MAGIC = b"BlbE"
_PAGE = 4096
_SLOT = 16
_BLOCK = 16
_HEADER = 32
_TAIL = 12
MAX_SLOT_PAGES = 2048  # 522,000 packages: far above any real image

Data = bytes | mmap.mmap


class NdbError(ValueError):
    """The file is not an ndb package database, or its header or slots are corrupt."""


@dataclass(frozen=True, slots=True)
class Blob:
    package_index: int
    value: bytes | None  # None: not readable, ``error`` says why
    error: str | None = None


def read_ndb_blobs(data: Data, max_blob_bytes: int) -> Iterator[Blob]:
    """Every package header blob of an ndb ``Packages.db``, in slot order."""
    if len(data) < _HEADER:
        raise NdbError(f"file of {len(data)} bytes is shorter than the 32-byte ndb header")
    if bytes(data[:4]) != _MAGIC:
        raise NdbError(f"no ndb magic 'RpmP' at byte 0 (found {bytes(data[:4])!r})")
    version, _generation, slot_pages = struct.unpack_from("<III", data, 4)
    if version != 0:
        raise NdbError(f"ndb format version {version}, only version 0 exists")
    if not 0 < slot_pages <= MAX_SLOT_PAGES:
        raise NdbError(f"{slot_pages} slot pages declared, outside 1..{MAX_SLOT_PAGES}")
    if slot_pages * _PAGE > len(data):
        raise NdbError(f"{slot_pages} slot pages declared, the file of {len(data)} bytes holds fewer")
    for pos in range(_HEADER, slot_pages * _PAGE, _SLOT):
        if bytes(data[pos : pos + 4]) != _SLOT_MAGIC:
            raise NdbError(f"slot at byte {pos} has no 'Slot' magic")
        index, block, blocks = struct.unpack_from("<III", data, pos + 4)
        if index == 0:
            continue
        yield _blob(data, index, block, blocks, max_blob_bytes)


def _blob(data: Data, index: int, block: int, blocks: int, limit: int) -> Blob:
    start, end = block * _BLOCK, (block + blocks) * _BLOCK
    if blocks * _BLOCK < _BLOCK + _TAIL or end > len(data):
        return Blob(index, None, f"block of {blocks} units at unit {block} is outside the file")
    if bytes(data[start : start + 4]) != _BLOB_MAGIC:
        return Blob(index, None, f"block at byte {start} has no 'BlbS' magic")
    blob_index, _generation, length = struct.unpack_from("<III", data, start + 4)
    if blob_index != index:
        return Blob(index, None, f"block at byte {start} belongs to package {blob_index}")
    if length > limit:
        return Blob(index, None, f"blob of {length} bytes, over the limit of {limit}")
    if _BLOCK + length + _TAIL > end - start:
        return Blob(index, None, f"blob of {length} bytes does not fit its block of {end - start} bytes")
    checksum, tail_length = struct.unpack_from("<II", data, end - _TAIL)
    if bytes(data[end - 4 : end]) != _TAIL_MAGIC or tail_length != length:
        return Blob(index, None, f"block at byte {start} has no valid 'BlbE' tail")
    if zlib.adler32(data[start : end - _TAIL]) != checksum:
        return Blob(index, None, f"blob at byte {start} does not match its Adler-32 checksum")
    return Blob(index, bytes(data[start + _BLOCK : start + _BLOCK + length]))
