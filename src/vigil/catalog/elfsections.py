"""Named sections of an ELF file, from its section header table (pure: bytes in, bytes out).

ELF32 and ELF64, either byte order. Every offset and size is checked against the file before it
is used: a truncated or hostile header raises ElfError, never an IndexError or struct.error."""

from __future__ import annotations

import mmap
import struct

ELF_MAGIC = b"\x7fELF"
MAX_SECTIONS = 65_535  # e_shnum is 16 bits; the extended count (in section 0) is not followed


class ElfError(ValueError):
    pass


def section(data: bytes | mmap.mmap, wanted: str) -> bytes | None:
    """The bytes of the section named ``wanted``, or None when there is none."""
    buf = data  # indexed and sliced directly: a memoryview of an mmap would keep it from closing
    if len(buf) < 52 or bytes(buf[:4]) != ELF_MAGIC:
        raise ElfError("not an ELF file")
    cls, order = buf[4], buf[5]
    if cls not in (1, 2) or order not in (1, 2):
        raise ElfError(f"unknown ELF class {cls} or byte order {order}")
    e = "<" if order == 1 else ">"
    if cls == 2:
        if len(buf) < 64:
            raise ElfError("ELF header truncated")
        (shoff,) = struct.unpack_from(e + "Q", buf, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", buf, 0x3A)
        entry, need = e + "IIQQQQ", 40
    else:
        (shoff,) = struct.unpack_from(e + "I", buf, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", buf, 0x2E)
        entry, need = e + "IIIIII", 24
    if shnum == 0 or shoff == 0:
        return None
    if shentsize < need or shoff + shnum * shentsize > len(buf) or shstrndx >= shnum:
        raise ElfError("section header table outside the file")

    def header(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(entry, buf, shoff + i * shentsize)
        return name, offset, size

    def body(offset: int, size: int) -> bytes:
        if offset + size > len(buf):
            raise ElfError("section outside the file")
        return bytes(buf[offset : offset + size])

    _, str_off, str_size = header(shstrndx)
    names = body(str_off, str_size)
    target = wanted.encode()
    for i in range(shnum):
        name_off, offset, size = header(i)
        if name_off >= len(names):
            continue
        end = bytes(names[name_off : name_off + len(target) + 1])
        if end == target + b"\0" or (end == target and name_off + len(target) == len(names)):
            return body(offset, size)
    return None
