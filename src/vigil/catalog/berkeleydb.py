"""The values of a Berkeley DB hash database file, as rpm's ``Packages`` (RHEL/CentOS up to 8,
Amazon Linux 2, Oracle Linux up to 8) stores its package headers in one.

Layout (Berkeley DB's ``dbinc/db_page.h``): the file is pages of one size. Page 0 is the hash
metadata page: its magic (``0x061561``, in the byte order of the machine that wrote it) at byte
12, the format version at 16, the page size at 20, the encryption algorithm at 24, the page type
at 25, the meta flags at 26 and the last page number at 32. Every other page starts with a
26-byte header: the page number at 8, the next page of a chain at 16, the number of entries (u16)
at 20, the offset of the free area (u16; on an overflow page, the length of its data) at 22 and
the page type at 25. A hash page (type 13, or 2 for old unsorted ones) holds after its header one
u16 offset per entry; entries are key, value, key, value... Each entry starts with its type:
1 (key/data on the page, its length running to the previous entry's offset, or to the page's end
for the first), or 3 (off page: the first overflow page at +4 and the total length at +8). An
overflow page (type 7) holds its share of the value from byte 26, and names the next one.

Pure parsing over a bytes-like object: every page number, offset, count and length is checked
against the file, and every overflow page may belong to one value only (a chain that loops, or
two values sharing pages, is refused), so a corrupt or hostile file costs at most its own size.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass

HASH_MAGIC = 0x061561
BTREE_MAGIC = 0x053162
QUEUE_MAGIC = 0x042253
_PAGE_SIZES = frozenset(1 << n for n in range(9, 17))  # 512 .. 65536, all Berkeley DB allows
_PAGE_HEADER = 26
_P_HASH_UNSORTED, _P_OVERFLOW, _P_HASHMETA, _P_HASH = 2, 7, 8, 13
_H_KEYDATA, _H_OFFPAGE = 1, 3
_META_CHECKSUMMED = 0x01

Data = bytes | mmap.mmap


class BerkeleyDBError(ValueError):
    """The file is not a Berkeley DB hash database this reader can read, or is corrupt."""


class UnsupportedBerkeleyDB(BerkeleyDBError):
    """A Berkeley DB file, but in a variant this reader does not read (btree, encrypted, ...)."""


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes
    value: bytes | None  # None: the value could not be read (``error`` says why)
    page: int
    error: str | None = None


class _Pages:
    def __init__(self, data: Data) -> None:
        if len(data) < 512:
            raise BerkeleyDBError(f"file of {len(data)} bytes is shorter than a Berkeley DB metadata page")
        magic_le = struct.unpack_from("<I", data, 12)[0]
        magic_be = struct.unpack_from(">I", data, 12)[0]
        if HASH_MAGIC in (magic_le, magic_be):
            self.order = "<" if magic_le == HASH_MAGIC else ">"
        elif BTREE_MAGIC in (magic_le, magic_be):
            raise UnsupportedBerkeleyDB("a Berkeley DB btree database, not a hash one")
        elif QUEUE_MAGIC in (magic_le, magic_be):
            raise UnsupportedBerkeleyDB("a Berkeley DB queue database, not a hash one")
        else:
            raise BerkeleyDBError(f"no Berkeley DB hash magic at byte 12 (found {magic_le:#x})")
        o = self.order
        self.version, self.page_size = struct.unpack_from(o + "II", data, 16)
        encrypted, page_type, meta_flags = data[24], data[25], data[26]
        (self.last_page,) = struct.unpack_from(o + "I", data, 32)
        if self.page_size not in _PAGE_SIZES:
            raise BerkeleyDBError(f"page size {self.page_size} is not one Berkeley DB uses")
        if page_type != _P_HASHMETA:
            raise BerkeleyDBError(f"page 0 is of type {page_type}, not a hash metadata page")
        if encrypted:
            raise UnsupportedBerkeleyDB(f"an encrypted Berkeley DB database (algorithm {encrypted})")
        if meta_flags & _META_CHECKSUMMED:
            raise UnsupportedBerkeleyDB("a Berkeley DB database with page checksums")
        self.pages = len(data) // self.page_size
        self.data = data

    def header(self, n: int) -> tuple[int, int, int, int]:
        """(next page, entries, free-area offset, page type) of page ``n``."""
        base = n * self.page_size
        (next_page,) = struct.unpack_from(self.order + "I", self.data, base + 16)
        entries, free_offset = struct.unpack_from(self.order + "HH", self.data, base + 20)
        return next_page, entries, free_offset, self.data[base + 25]


def read_hash_records(data: Data, max_value_bytes: int) -> Iterator[Record]:
    """Every key/value pair of a Berkeley DB hash file, in page order.

    Raises ``BerkeleyDBError`` (or ``UnsupportedBerkeleyDB``) when the file as a whole cannot be
    read, or, after the records it holds, when it is shorter than its metadata declares; a value
    that cannot be read (a broken overflow chain, one over ``max_value_bytes``) is a ``Record``
    with its ``error``, and reading goes on with the next one.
    """
    pages = _Pages(data)
    last = min(pages.last_page, pages.pages - 1)
    owned: set[int] = set()  # overflow pages already given to a value
    size = pages.page_size
    for n in range(1, last + 1):
        _next, entries, _free, page_type = pages.header(n)
        if page_type not in (_P_HASH, _P_HASH_UNSORTED):
            continue
        if entries % 2 or _PAGE_HEADER + 2 * entries > size:
            yield Record(b"", None, n, f"hash page {n} declares {entries} entries, not key/value pairs in the page")
            continue
        base = n * size
        offsets = struct.unpack_from(f"{pages.order}{entries}H", data, base + _PAGE_HEADER)
        for i in range(0, entries, 2):
            try:
                key = _item(pages, n, offsets, i, owned, max_value_bytes)
                value = _item(pages, n, offsets, i + 1, owned, max_value_bytes)
            except BerkeleyDBError as exc:
                yield Record(b"", None, n, str(exc))
                continue
            yield Record(key, value, n)
    if pages.last_page >= pages.pages:
        raise BerkeleyDBError(
            f"the file ends after page {pages.pages - 1}, its metadata declares pages up to {pages.last_page}"
        )


def _item(pages: _Pages, n: int, offsets: tuple[int, ...], i: int, owned: set[int], limit: int) -> bytes:
    size = pages.page_size
    start = offsets[i]
    end = size if i == 0 else offsets[i - 1]
    if not _PAGE_HEADER + 2 * len(offsets) <= start < end <= size:
        raise BerkeleyDBError(f"hash page {n}: entry {i} at offset {start} is outside the page")
    base = n * size
    kind = pages.data[base + start]
    if kind == _H_KEYDATA:
        return bytes(pages.data[base + start + 1 : base + end])
    if kind != _H_OFFPAGE:
        raise BerkeleyDBError(f"hash page {n}: entry {i} is of type {kind}, neither on the page nor off it")
    if end - start < 12:
        raise BerkeleyDBError(f"hash page {n}: off-page entry {i} is shorter than 12 bytes")
    first, total = struct.unpack_from(pages.order + "II", pages.data, base + start + 4)
    if total > limit:
        raise BerkeleyDBError(f"hash page {n}: entry {i} declares {total} bytes, over the limit of {limit}")
    return _overflow(pages, first, total, owned)


def _overflow(pages: _Pages, page: int, total: int, owned: set[int]) -> bytes:
    parts: list[bytes] = []
    got = 0
    start_page = page
    while page != 0:
        if page >= pages.pages:
            raise BerkeleyDBError(f"overflow chain from page {start_page} names page {page}, past the file's end")
        if page in owned:
            raise BerkeleyDBError(f"overflow chain from page {start_page} reaches page {page} a second time")
        owned.add(page)
        next_page, _entries, length, page_type = pages.header(page)
        if page_type != _P_OVERFLOW:
            raise BerkeleyDBError(f"overflow chain from page {start_page}: page {page} is of type {page_type}")
        if length > pages.page_size - _PAGE_HEADER or got + length > total:
            raise BerkeleyDBError(f"overflow chain from page {start_page}: page {page} holds more than declared")
        base = page * pages.page_size + _PAGE_HEADER
        parts.append(bytes(pages.data[base : base + length]))
        got += length
        page = next_page
    if got != total:
        raise BerkeleyDBError(f"overflow chain from page {start_page} holds {got} bytes, {total} declared")
    return b"".join(parts)
