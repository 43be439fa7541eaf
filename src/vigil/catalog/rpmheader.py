"""RPM package headers, as stored in the sqlite rpmdb (``Packages.blob``).

A stored header is: index count ``il`` and data length ``dl`` (big-endian
uint32), ``il`` 16-byte index entries (tag, type, offset, count), then ``dl``
bytes of data the entries point into. Pure parsing; every offset is checked
against the data so a corrupt blob raises ``HeaderError`` instead of reading
past it.
"""

from __future__ import annotations

import builtins
import struct
from dataclasses import dataclass, field

TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_VENDOR = 1011
TAG_LICENSE = 1014
TAG_ARCH = 1022
TAG_OLDFILENAMES = 1027
TAG_FILEMODES = 1030
TAG_SOURCERPM = 1044
TAG_DIRINDEXES = 1116
TAG_BASENAMES = 1117
TAG_DIRNAMES = 1118

_CHAR, _INT8, _INT16, _INT32, _INT64, _STRING, _BIN, _STRING_ARRAY, _I18NSTRING = 1, 2, 3, 4, 5, 6, 7, 8, 9
_MAX_INDEX = 0xFFFF  # rpm's own limits for a header
_MAX_DATA = 256 << 20


class HeaderError(ValueError):
    pass


@dataclass(slots=True)
class RpmHeader:
    values: dict[int, object] = field(default_factory=dict)

    def string(self, tag: int) -> str | None:
        v = self.values.get(tag)
        if isinstance(v, list):
            v = v[0] if v else None
        return v if isinstance(v, str) else None

    def int(self, tag: int) -> int | None:
        v = self.values.get(tag)
        if isinstance(v, list) and v and isinstance(v[0], int):
            return v[0]
        return None

    # `int` below names the method above, so the builtin is spelt out.
    def strings(self, tag: builtins.int) -> list[str]:
        v = self.values.get(tag)
        return [s for s in v if isinstance(s, str)] if isinstance(v, list) else []

    def ints(self, tag: builtins.int) -> list[builtins.int]:
        v = self.values.get(tag)
        return [i for i in v if isinstance(i, int)] if isinstance(v, list) else []

    def file_paths(self) -> list[str]:
        basenames = self.strings(TAG_BASENAMES)
        if basenames:
            dirnames, indexes = self.strings(TAG_DIRNAMES), self.ints(TAG_DIRINDEXES)
            if len(indexes) != len(basenames) or any(i < 0 or i >= len(dirnames) for i in indexes):
                raise HeaderError("file dirindexes do not match basenames and dirnames")
            return [dirnames[i] + b for i, b in zip(indexes, basenames, strict=True)]
        return self.strings(TAG_OLDFILENAMES)


def _cstring(data: bytes, start: int) -> tuple[str, int]:
    end = data.find(b"\0", start)
    if end < 0:
        raise HeaderError(f"string at data offset {start} is not NUL-terminated")
    return data[start:end].decode("utf-8", "replace"), end + 1


_WANTED = {
    TAG_NAME,
    TAG_VERSION,
    TAG_RELEASE,
    TAG_EPOCH,
    TAG_VENDOR,
    TAG_LICENSE,
    TAG_ARCH,
    TAG_OLDFILENAMES,
    TAG_FILEMODES,
    TAG_SOURCERPM,
    TAG_DIRINDEXES,
    TAG_BASENAMES,
    TAG_DIRNAMES,
}


def parse_header_blob(blob: bytes) -> RpmHeader:
    if len(blob) < 8:
        raise HeaderError("header blob shorter than its 8-byte preamble")
    il, dl = struct.unpack_from(">II", blob, 0)
    if il < 1 or il > _MAX_INDEX or dl > _MAX_DATA:
        raise HeaderError(f"implausible header sizes: {il} index entries, {dl} data bytes")
    data_start = 8 + 16 * il
    if data_start + dl > len(blob):
        raise HeaderError(f"header blob of {len(blob)} bytes is shorter than its {il} entries + {dl} data bytes")
    data = blob[data_start : data_start + dl]
    header = RpmHeader()
    for i in range(il):
        tag, typ, offset, count = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        if tag not in _WANTED:
            continue
        if offset < 0 or offset > dl:
            raise HeaderError(f"tag {tag}: data offset {offset} outside the {dl} data bytes")
        if typ in (_STRING, _I18NSTRING, _STRING_ARRAY):
            values: list[object] = []
            pos = offset
            n = 1 if typ == _STRING else count
            for _ in range(n):
                s, pos = _cstring(data, pos)
                values.append(s)
            header.values[tag] = values[0] if typ == _STRING else values
        elif typ in (_INT8, _CHAR, _INT16, _INT32, _INT64):
            size, fmt = {_INT8: (1, "B"), _CHAR: (1, "B"), _INT16: (2, "H"), _INT32: (4, "I"), _INT64: (8, "Q")}[typ]
            if offset + size * count > dl:
                raise HeaderError(f"tag {tag}: {count} values run past the data")
            header.values[tag] = list(struct.unpack_from(f">{count}{fmt}", data, offset))
    return header


def split_source_rpm(source_rpm: str) -> tuple[str, str] | None:
    """ "bash-5.1.8-6.el9.src.rpm" -> ("bash", "5.1.8-6.el9")."""
    stem = source_rpm
    for suffix in (".src.rpm", ".nosrc.rpm"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    parts = stem.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], f"{parts[1]}-{parts[2]}"
