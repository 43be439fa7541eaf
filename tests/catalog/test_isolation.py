"""One file that breaks its parser loses that file's packages only.

One image holds, for each kind of failure a cataloger's input can cause, a file that raises it
(``csv.Error``: a RECORD field over 128 KiB; ``RecursionError``: deeply nested JSON;
``struct.error``: a truncated ELF; ``zlib.error``: a bad deflate stream; ``RuntimeError``: an
encrypted zip member; ``TypeError``-prone: an rpmdb blob of the wrong type), beside good files
of the same kind, and the real dpkg and apk databases of shared/data/pkgdb. Every cataloger of the
table runs over all of it: every good package is listed, and every bad file is named in a warning
and, where the file could not be read at all, in the scan's unread files."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from vigil.catalog import CATALOGERS, catalog_rootfs
from vigil.catalog.berkeleydb import read_hash_records
from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.gobuildinfo import MAGIC
from vigil.catalog.limits import LimitExceeded
from vigil.catalog.rpmheader import parse_header_blob
from vigil.catalog.warnings import WarningSink

from .conftest import PKGDB, build_go_program

SITE = "usr/lib/python3/dist-packages"
HELLO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n'


def jar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def pom_properties(group: str, artifact: str, version: str) -> dict[str, bytes]:
    path = f"META-INF/maven/{group}/{artifact}/pom.properties"
    return {path: f"groupId={group}\nartifactId={artifact}\nversion={version}\n".encode() * 50}


def with_bad_deflate(data: bytes, member: str) -> bytes:
    """The member's deflate stream overwritten with bytes no inflater accepts (sizes and names kept)."""
    z = zipfile.ZipFile(io.BytesIO(data))
    info = z.getinfo(member)
    out = bytearray(data)
    name_len, extra_len = struct.unpack_from("<HH", out, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len
    out[start : start + info.compress_size] = b"\xff" * info.compress_size
    return bytes(out)


def with_encrypted_flag(data: bytes, member: str) -> bytes:
    """The member marked encrypted (general purpose flag bit 0) in both of its headers."""
    z = zipfile.ZipFile(io.BytesIO(data))
    info = z.getinfo(member)
    out = bytearray(data)
    out[info.header_offset + 6] |= 1
    central = out.find(b"PK\x01\x02")
    while central >= 0:
        if out[central + 46 : central + 46 + len(member)] == member.encode():
            out[central + 8] |= 1
            break
        central = out.find(b"PK\x01\x02", central + 4)
    return bytes(out)


def truncated_go_elf() -> bytes:
    """An ELF64 header whose program headers lie past the file's end, and a Go build info header
    whose strings are pointers: mapping them reads past the end (struct.error)."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 0x10000)  # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)  # e_phentsize, e_phnum
    build_info = MAGIC + bytes([8, 0]) + b"\0" * 16
    return bytes(header) + build_info + b"\0" * 32


def rpmdb_sqlite(path: Path) -> None:
    good = next(
        r.value
        for r in read_hash_records((PKGDB / "rpm/el8-libuuid-bdb/Packages").read_bytes(), 1 << 28)
        if r.key != b"\0\0\0\0"
    )
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)")
    conn.execute("INSERT INTO Packages VALUES (1, ?)", (good,))
    conn.execute("INSERT INTO Packages VALUES (2, ?)", ("a header as text",))
    conn.execute("INSERT INTO Packages VALUES (3, ?)", (42,))
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("isolation") / "root"
    write = lambda rel, data: ((root / rel).parent.mkdir(parents=True, exist_ok=True), (root / rel).write_bytes(data))  # noqa: E731
    write("etc/os-release", b'ID=debian\nVERSION_ID="12"\n')
    write("var/lib/dpkg/status", (PKGDB / "debian/status-single").read_bytes())
    write("lib/apk/db/installed", (PKGDB / "alpine/installed-multiple").read_bytes())
    # python: csv.Error from RECORD, the distribution itself still listed
    write(f"{SITE}/good-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: good\nVersion: 1.0\n")
    write(f"{SITE}/good-1.0.dist-info/RECORD", b"good/__init__.py,,\n")
    write(f"{SITE}/bigrecord-2.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: bigrecord\nVersion: 2.0\n")
    write(f"{SITE}/bigrecord-2.0.dist-info/RECORD", b'"' + b"x" * (200 << 10) + b'",,\n')
    # npm: RecursionError from JSON nested 100,000 deep
    write("app/node_modules/left-pad/package.json", json.dumps({"name": "left-pad", "version": "1.3.0"}).encode())
    write("app/node_modules/deep/package.json", b"[" * 100_000 + b"]" * 100_000)
    # go: struct.error from a truncated ELF, beside a real Go binary
    write("usr/local/bin/truncated", truncated_go_elf())
    (root / "usr/local/bin/truncated").chmod(0o755)
    shutil.copy2(build_go_program("hello", HELLO), root / "usr/local/bin/hello")
    # java: zlib.error (bad deflate stream) and RuntimeError (encrypted member), beside a good jar
    write("opt/lib/good-lib-1.0.jar", jar(pom_properties("org.example", "good-lib", "1.0")))
    bad = pom_properties("org.example", "deflate-bad", "2.0")
    write("opt/lib/deflate-bad-2.0.jar", with_bad_deflate(jar(bad), next(iter(bad))))
    enc = pom_properties("org.example", "encrypted", "3.0")
    write("opt/lib/encrypted-3.0.jar", with_encrypted_flag(jar(enc), next(iter(enc))))
    # rpm: a blob of the wrong type (text, an integer) beside a real header
    (root / "var/lib/rpm").mkdir(parents=True)
    rpmdb_sqlite(root / "var/lib/rpm/rpmdb.sqlite")
    return root


def test_every_good_package_is_listed_beside_the_bad_files(image):
    result = catalog_rootfs(image)
    names = {(p.cataloger, p.name) for p in result.packages}
    assert {
        ("dpkg", "apt"),
        ("apk", "busybox"),
        ("python", "good"),
        ("python", "bigrecord"),
        ("npm", "left-pad"),
        ("go-binary", "example.com/vigil/hello"),
        ("go-binary", "stdlib"),
        ("java-archive", "org.example:good-lib"),
        ("rpmdb", "libuuid"),
    } <= names
    assert not any(run.failed for run in result.catalogers.values()), result.catalogers
    assert set(result.catalogers) == set(CATALOGERS)


def test_every_bad_file_is_named_with_its_error(image):
    result = catalog_rootfs(image)
    by_file: dict[str, list[str]] = {}
    for w in result.warnings:
        by_file.setdefault(w.file, []).append(f"[{w.entry}] {w.message}" if w.entry else w.message)
    assert by_file == {
        f"/{SITE}/bigrecord-2.0.dist-info/RECORD": [
            "[bigrecord] owned files not readable: Error: field larger than field limit (131072)"
        ],
        "/app/node_modules/deep/package.json": [
            "package.json not read: RecursionError: maximum recursion depth exceeded while decoding a JSON array "
            "from a unicode string"
        ],
        "/usr/local/bin/truncated": [
            "Go build info not readable, binary skipped: unpack_from requires a buffer of at least 65576 bytes "
            "for unpacking 40 bytes at offset 65536 (actual buffer size is 128)"
        ],
        "/opt/lib/deflate-bad-2.0.jar": ["Java archive skipped: Error -3 while decompressing data: invalid block type"],
        "/opt/lib/encrypted-3.0.jar": [
            "Java archive skipped: File 'META-INF/maven/org.example/encrypted/pom.properties' is encrypted, "
            "password required for extraction"
        ],
        "/var/lib/rpm/rpmdb.sqlite": [
            "[Packages row 2] corrupt header skipped: a str, not a blob",
            "[Packages row 3] corrupt header skipped: a int, not a blob",
        ],
    }
    assert result.unread == sorted(
        [
            f"/{SITE}/bigrecord-2.0.dist-info/RECORD",
            "/app/node_modules/deep/package.json",
            "/usr/local/bin/truncated",
            "/opt/lib/deflate-bad-2.0.jar",
            "/opt/lib/encrypted-3.0.jar",
        ]
    )
    assert result.incomplete is True


def _encrypted_member_read() -> None:
    members = pom_properties("org.example", "enc", "1.0")
    data = with_encrypted_flag(jar(members), next(iter(members)))
    zipfile.ZipFile(io.BytesIO(data)).read(next(iter(members)))


FAILURES = [
    ("Error", lambda: list(csv.reader(io.StringIO('"' + "x" * (200 << 10) + '"\n')))),
    ("RecursionError", lambda: json.loads("[" * 100_000 + "]" * 100_000)),
    ("error", lambda: struct.unpack_from("<Q", b"\0" * 4, 0)),
    ("error", lambda: zlib.decompress(b"\xff" * 64)),
    ("RuntimeError", _encrypted_member_read),
    ("TypeError", lambda: parse_header_blob("a header as text")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("kind", "fail"), FAILURES, ids=[f[0] + str(n) for n, f in enumerate(FAILURES)])
def test_reading_turns_each_failure_of_one_file_into_its_warning(kind, fail, tmp_path):
    """The guard every cataloger reads each file under: the real exception each input raises in the
    standard library's parsers is a warning naming the file and the error, and the next file is read."""
    ctx = CatalogContext(os=None, warnings=WarningSink(), workdir=tmp_path)
    read = []
    for name in ("/bad", "/good"):
        with reading(ctx, name, "test input"):
            if name == "/bad":
                fail()
            read.append(name)
    assert read == ["/good"]
    [warning] = ctx.warnings.items
    assert (warning.file, warning.entry) == ("/bad", None)
    assert warning.message.startswith(f"test input not read: {kind}: ")
    assert ctx.warnings.unread == ["/bad"] and ctx.warnings.incomplete is True


@pytest.mark.parametrize("stop", [LimitExceeded("max_files", 1, "at /x"), MemoryError()])
def test_a_scan_limit_or_exhausted_memory_is_not_one_files_fault(stop, tmp_path):
    ctx = CatalogContext(os=None, warnings=WarningSink(), workdir=tmp_path)
    with pytest.raises(type(stop)), reading(ctx, "/x", "test input"):
        raise stop
    assert ctx.warnings.items == []


def test_a_file_wrong_in_every_row_still_says_where_its_read_stopped():
    sink = WarningSink()
    for row in range(1, 1501):
        sink.warn("/var/lib/rpm/rpmdb.sqlite", f"Packages row {row}", "corrupt header skipped")
    sink.warn_incomplete("/var/lib/rpm/rpmdb.sqlite", None, "rpm database not read to its end: deadline")
    assert [(w.entry, w.message) for w in sink.items[-3:]] == [
        ("Packages row 1000", "corrupt header skipped"),
        (None, "more than 1000 warnings; the rest are not listed"),
        (None, "rpm database not read to its end: deadline"),
    ]
    assert len(sink.items) == 1002 and sink.incomplete is True
