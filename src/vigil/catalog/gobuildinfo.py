"""Go build information embedded in ELF binaries (what ``go version -m`` shows).

The linker writes a 32-byte header starting ``\\xff Go buildinf:`` then, at
byte 14, the pointer size and, at byte 15, flags (bit 0: big-endian, bit 1:
strings inline). Go 1.18+ puts the version and the module info right after the
header as uvarint-length strings; older toolchains put two pointers to Go
string headers (data pointer, length) that must be mapped from virtual
addresses to file offsets through the ELF program headers. The module info is
framed by 16-byte sentinels. Pure parsing over a bytes-like object (an mmap
for a file), no execution and no Go toolchain needed.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field

MAGIC = b"\xff Go buildinf:"
_HEADER = 32
_ALIGN = 16
_MAX_STRING = 1 << 24

# What the parser reads: a whole file's bytes, or an mmap of it.
Data = bytes | mmap.mmap


class BuildInfoError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GoModule:
    path: str
    version: str
    sum: str | None = None
    replaced_by: GoModule | None = None


@dataclass(slots=True)
class GoBuildInfo:
    go_version: str
    path: str | None = None  # the main package path
    main: GoModule | None = None
    deps: list[GoModule] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)


def _uvarint(data: Data, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise BuildInfoError("truncated varint in inline build info")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _inline_string(data: Data, pos: int) -> tuple[bytes, int]:
    n, pos = _uvarint(data, pos)
    if n > _MAX_STRING or pos + n > len(data):
        raise BuildInfoError("inline build info string runs past the end of the file")
    return bytes(data[pos : pos + n]), pos + n


class _Elf:
    """Just enough ELF to map a virtual address to a file offset."""

    def __init__(self, data: Data) -> None:
        if bytes(data[:4]) != b"\x7fELF":
            raise BuildInfoError("not an ELF file")
        cls, enc = data[4], data[5]
        self.is64 = cls == 2
        self.endian = "<" if enc == 1 else ">"
        e = self.endian
        if self.is64:
            (phoff,) = struct.unpack_from(e + "Q", data, 0x20)
            phentsize, phnum = struct.unpack_from(e + "HH", data, 0x36)
        else:
            (phoff,) = struct.unpack_from(e + "I", data, 0x1C)
            phentsize, phnum = struct.unpack_from(e + "HH", data, 0x2A)
        self.loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
        for i in range(phnum):
            off = phoff + i * phentsize
            if self.is64:
                p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(e + "IIQQQQ", data, off)
            else:
                p_type, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(e + "IIIII", data, off)
            if p_type == 1:  # PT_LOAD
                self.loads.append((p_vaddr, p_offset, p_filesz))

    def read(self, data: Data, vaddr: int, size: int) -> bytes:
        for base, offset, filesz in self.loads:
            if base <= vaddr and vaddr + size <= base + filesz:
                start = offset + (vaddr - base)
                return bytes(data[start : start + size])
        raise BuildInfoError(f"address {vaddr:#x} is not in a loaded segment")


def find_header(data: Data) -> int:
    """Offset of the build info header, or -1 when the file has none."""
    pos = data.find(MAGIC)
    while pos != -1:
        if pos % _ALIGN == 0 and pos + _HEADER <= len(data):
            return pos
        pos = data.find(MAGIC, pos + 1)
    return -1


def parse_build_info(data: Data) -> GoBuildInfo | None:
    """Build info of a Go ELF binary; None when it is not a Go binary."""
    pos = find_header(data)
    if pos < 0:
        return None
    ptr_size, flags = data[pos + 14], data[pos + 15]
    if flags & 0x2:
        version, nxt = _inline_string(data, pos + _HEADER)
        modinfo, _ = _inline_string(data, nxt)
    else:
        if ptr_size not in (4, 8):
            raise BuildInfoError(f"pointer size {ptr_size} in the build info header is neither 4 nor 8")
        elf = _Elf(data)
        endian = ">" if flags & 0x1 else "<"
        fmt = endian + ("Q" if ptr_size == 8 else "I")

        def read_go_string(header_addr: int) -> bytes:
            header = elf.read(data, header_addr, 2 * ptr_size)
            str_ptr, str_len = struct.unpack(endian + ("QQ" if ptr_size == 8 else "II"), header)
            if str_len == 0:
                return b""
            if str_len > _MAX_STRING:
                raise BuildInfoError("build info string length is implausible")
            return elf.read(data, str_ptr, str_len)

        (version_addr,) = struct.unpack_from(fmt, data, pos + 16)
        (modinfo_addr,) = struct.unpack_from(fmt, data, pos + 16 + ptr_size)
        version = read_go_string(version_addr)
        modinfo = read_go_string(modinfo_addr)
    if len(modinfo) >= 33 and modinfo[-17] == ord("\n"):
        modinfo = modinfo[16:-16]
    else:
        modinfo = b""
    info = GoBuildInfo(go_version=version.decode("utf-8", "replace"))
    _parse_modinfo(modinfo.decode("utf-8", "replace"), info)
    return info


def _parse_modinfo(text: str, info: GoBuildInfo) -> None:
    last: GoModule | None = None
    for line in text.splitlines():
        parts = line.split("\t")
        kind = parts[0]
        if kind == "path" and len(parts) >= 2:
            info.path = parts[1]
        elif kind in ("mod", "dep") and len(parts) >= 3:
            mod = GoModule(parts[1], parts[2], parts[3] if len(parts) > 3 and parts[3] else None)
            if kind == "mod":
                info.main = mod
            else:
                info.deps.append(mod)
            last = mod
        elif kind == "=>" and len(parts) >= 3 and last is not None:
            replacement = GoModule(parts[1], parts[2], parts[3] if len(parts) > 3 and parts[3] else None)
            replaced = GoModule(last.path, last.version, last.sum, replacement)
            if info.main is last:
                info.main = replaced
            else:
                info.deps[-1] = replaced
            last = None
        elif kind == "build" and len(parts) >= 2:
            key, _, value = parts[1].partition("=")
            info.settings[key] = value
