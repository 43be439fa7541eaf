"""Files as build tools write them, for tests and benches of the catalog: zip archives (jars,
wars, ears), Java manifests as Tomcat writes them, and ELF executables with named sections
(cargo-auditable's ``.dep-v0``). Byte-for-byte reproducible from their inputs.

    jar = zip_bytes({"META-INF/MANIFEST.MF": tomcat_manifest("catalina", "9.0.71")})
    exe = elf_with_sections({".dep-v0": zlib.compress(b'{"packages": []}')})
"""

from __future__ import annotations

import io
import struct
import zipfile

_FIXED_TIME = (2024, 1, 1, 0, 0, 0)


def zip_bytes(entries: dict[str, bytes | str]) -> bytes:
    """A deflated zip of ``entries`` in the order given (a jar is a zip; ``jar`` writes the same)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name, _FIXED_TIME), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def tomcat_manifest(bundle: str, version: str) -> str:
    """The main section of a Tomcat jar's manifest (``lib/catalina.jar`` is bundle ``catalina``):
    OSGi headers naming the bundle ``org.apache.tomcat-<bundle>``, and Implementation-Title
    "Apache Tomcat" on every jar alike."""
    lines = [
        "Manifest-Version: 1.0",
        "Bundle-ManifestVersion: 2",
        f"Bundle-Name: tomcat-{bundle}",
        f"Bundle-SymbolicName: org.apache.tomcat-{bundle}",
        f"Bundle-Version: {version}",
        "Implementation-Title: Apache Tomcat",
        "Implementation-Vendor: Apache Software Foundation",
        f"Implementation-Version: {version}",
        "Specification-Title: Apache Tomcat",
        f"Specification-Version: {version.rsplit('.', 1)[0]}",
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


def elf_with_sections(sections: dict[str, bytes]) -> bytes:
    """A little-endian ELF64 x86-64 executable holding ``sections`` (SHT_PROGBITS) and a section
    name table (SHT_STRTAB), as ``readelf -S`` and ``objcopy`` read them; no program headers."""
    names = b"\0" + b"".join(n.encode() + b"\0" for n in [*sections, ".shstrtab"])
    body = bytearray(b"\0" * 64)
    placed = []
    for name, data in [*sections.items(), (".shstrtab", names)]:
        placed.append((names.index(b"\0" + name.encode() + b"\0") + 1, len(body), len(data)))
        body += data
    shoff = len(body)
    body += b"\0" * 64  # the null section
    for k, (name_off, offset, size) in enumerate(placed):
        kind = 3 if k == len(placed) - 1 else 1
        body += struct.pack("<IIQQQQIIQQ", name_off, kind, 0, 0, offset, size, 0, 0, 1, 0)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 0, shoff, 0, 64, 56, 0, 64, len(placed) + 1, len(placed))
    body[:64] = header
    return bytes(body)
