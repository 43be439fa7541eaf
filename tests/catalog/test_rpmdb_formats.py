"""rpm databases in Berkeley DB hash (``Packages``) and SUSE ndb (``Packages.db``) format: the real
files of shared/data/pkgdb/rpm (go-rpmdb's test data, MIT, see its LICENSE.go-rpmdb), read as they
sit in an image, against ``rpm -qa --dbpath`` for Berkeley DB (Debian's rpm 4.18 reads it) and
against the file's own declared contents for ndb (Debian's rpm is built without ndb). Corrupt,
truncated and hostile copies, made by the tests, are warnings naming the file, never a crash or
a hang."""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from vigil.catalog import catalog_rootfs
from vigil.catalog.berkeleydb import read_hash_records
from vigil.catalog.rpmndb import read_ndb_blobs

from .conftest import PKGDB

BDB = PKGDB / "rpm" / "el8-libuuid-bdb" / "Packages"
NDB = PKGDB / "rpm" / "sle15-bci-ndb" / "Packages.db"
RHEL8 = 'ID="rhel"\nVERSION_ID="8.8"\n'
SLES15 = 'ID="sles"\nVERSION_ID="15.3"\n'
QUERY = "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH}\n"

# The 35 headers Packages.db declares in its slots (registry.suse.com/bci/bci-minimal:15.3), every
# blob's Adler-32 checksum matching: name, version-release, arch (no package has an epoch).
SLE15_BCI = [
    ("system-user-root", "20190513-3.3.1", "noarch"),
    ("filesystem", "15.0-11.3.2", "x86_64"),
    ("glibc", "2.31-9.3.2", "x86_64"),
    ("libpcre1", "8.45-20.10.1", "x86_64"),
    ("libgmp10", "6.1.2-4.6.1", "x86_64"),
    ("libgcc_s1", "11.2.1+git610-1.3.9", "x86_64"),
    ("libcap2", "2.26-4.6.1", "x86_64"),
    ("libstdc++6", "11.2.1+git610-1.3.9", "x86_64"),
    ("libncurses6", "6.1-5.9.1", "x86_64"),
    ("terminfo-base", "6.1-5.9.1", "x86_64"),
    ("libattr1", "2.4.47-2.19", "x86_64"),
    ("libselinux1", "3.0-1.31", "x86_64"),
    ("libreadline7", "7.0-19.6.1", "x86_64"),
    ("bash", "4.4-19.6.1", "x86_64"),
    ("libacl1", "2.2.52-4.3.1", "x86_64"),
    ("coreutils", "8.32-3.2.1", "x86_64"),
    ("sles-release", "15.3-55.4.1", "x86_64"),
    ("ca-certificates-mozilla-prebuilt", "2.44-21.1", "noarch"),
    ("libgpg-error0", "1.29-1.8", "x86_64"),
    ("libpopt0", "1.16-3.22", "x86_64"),
    ("file-magic", "5.32-7.14.1", "noarch"),
    ("libbz2-1", "1.0.6-5.11.1", "x86_64"),
    ("liblua5_3-5", "5.3.6-3.6.1", "x86_64"),
    ("liblzma5", "5.2.3-4.3.1", "x86_64"),
    ("libz1", "1.2.11-3.21.1", "x86_64"),
    ("libzstd1", "1.4.4-1.6.1", "x86_64"),
    ("libmagic1", "5.32-7.14.1", "x86_64"),
    ("libdw1", "0.168-4.5.3", "x86_64"),
    ("libebl-plugins", "0.168-4.5.3", "x86_64"),
    ("libelf1", "0.168-4.5.3", "x86_64"),
    ("libcrypt1", "4.4.15-2.51", "x86_64"),
    ("perl-base", "5.26.1-15.87", "x86_64"),
    ("libgcrypt20", "1.8.2-8.39.1", "x86_64"),
    ("rpm-config-SUSE", "1-5.6.1", "noarch"),
    ("rpm-ndb", "4.14.3-40.1", "x86_64"),
]

pytestmark = pytest.mark.skipif(
    not BDB.is_file() or not NDB.is_file(), reason=f"shared rpm databases missing in {PKGDB}"
)


def image_with(tmp_path: Path, db_path: str, data: bytes, os_release: str) -> Path:
    root = tmp_path / "root"
    target = root / db_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/os-release").write_text(os_release)
    return root


def rpm_qa(dbpath: Path) -> list[str]:
    if shutil.which("rpm") is None:
        pytest.fail("rpm is not installed (scripts/setup installs Debian's rpm)")
    proc = subprocess.run(
        ["rpm", "-qa", "--dbpath", str(dbpath), "--qf", QUERY], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(proc.stdout.splitlines())


def listing(result) -> list[str]:
    return sorted(f"{p.name} {p.version} {p.arch}" for p in result.packages)


def test_berkeley_db_packages_equal_rpm_qa(tmp_path):
    expected = rpm_qa(BDB.parent)
    assert expected == ["libuuid 2.32.1-42.el8_8 x86_64"]
    result = catalog_rootfs(image_with(tmp_path, "/var/lib/rpm/Packages", BDB.read_bytes(), RHEL8))
    assert result.warnings == [] and result.unread == []
    assert listing(result) == expected
    [uuid] = result.packages
    assert (uuid.cataloger, uuid.found_in, uuid.source_name, uuid.source_version) == (
        "rpmdb",
        "/var/lib/rpm/Packages",
        "util-linux",
        "2.32.1-42.el8_8",
    )
    assert uuid.purl == (
        "pkg:rpm/rhel/libuuid@2.32.1-42.el8_8?arch=x86_64&distro=rhel-8.8&upstream=util-linux-2.32.1-42.el8_8.src.rpm"
    )
    # rpm -qal lists the package's directories too; the catalog lists owned files (as for dpkg).
    ql = subprocess.run(
        ["rpm", "-qa", "--dbpath", str(BDB.parent), "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert uuid.files == [line.split(" ", 1)[1] for line in ql if not line.startswith("d")]
    assert len(uuid.files) == 5


def test_ndb_packages_equal_the_files_declared_contents(tmp_path):
    result = catalog_rootfs(image_with(tmp_path, "/usr/lib/sysimage/rpm/Packages.db", NDB.read_bytes(), SLES15))
    assert result.warnings == [] and result.unread == []
    assert listing(result) == sorted(f"{n} {v} {a}" for n, v, a in SLE15_BCI)
    bash = next(p for p in result.packages if p.name == "bash")
    assert bash.found_in == "/usr/lib/sysimage/rpm/Packages.db"
    assert (bash.source_name, bash.source_version) == ("bash", "4.4-19.6.1")
    assert "/usr/bin/bash" in bash.files
    # Every slot in use names a block whose blob's checksum holds, in slot order.
    blobs = list(read_ndb_blobs(NDB.read_bytes(), 1 << 28))
    # Indexes 19 and 35..38 were freed when their packages were updated in the image.
    assert sorted(b.package_index for b in blobs) == [*range(1, 19), *range(20, 35), 39, 40]
    assert all(b.error is None for b in blobs)


def test_the_newest_format_in_a_directory_is_read_and_the_others_named(tmp_path):
    root = image_with(tmp_path, "/var/lib/rpm/Packages.db", NDB.read_bytes(), SLES15)
    (root / "var/lib/rpm/Packages").write_bytes(BDB.read_bytes())
    result = catalog_rootfs(root)
    assert len(result.packages) == 35
    assert [str(w) for w in result.warnings] == [
        "/var/lib/rpm/Packages: rpm database in Berkeley DB format not read: "
        "/var/lib/rpm/Packages.db (ndb) is the one rpm reads"
    ]


def bdb_page(data: bytearray, n: int) -> int:
    return n * 4096


def test_berkeley_db_btree_is_said_not_read(tmp_path):
    data = bytearray(BDB.read_bytes())
    struct.pack_into("<I", data, 12, 0x053162)
    result = catalog_rootfs(image_with(tmp_path, "/var/lib/rpm/Packages", bytes(data), RHEL8))
    assert result.packages == []
    assert [str(w) for w in result.warnings] == [
        "/var/lib/rpm/Packages: rpm database in Berkeley DB format not read: "
        "a Berkeley DB btree database, not a hash one"
    ]
    assert result.unread == ["/var/lib/rpm/Packages"]


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (20, 1000, "page size 1000 is not one Berkeley DB uses"),
        (24, 1, "encrypted"),
        (12, 0x12345678, "no Berkeley DB hash magic at byte 12"),
    ],
)
def test_berkeley_db_corrupt_metadata_is_a_warning(tmp_path, offset, value, message):
    data = bytearray(BDB.read_bytes())
    if offset == 24:
        data[24] = value
    else:
        struct.pack_into("<I", data, offset, value)
    result = catalog_rootfs(image_with(tmp_path, "/var/lib/rpm/Packages", bytes(data), RHEL8))
    assert result.packages == []
    [warning] = result.warnings
    assert warning.file == "/var/lib/rpm/Packages" and message in warning.message
    assert warning.message.startswith("rpm database in Berkeley DB format not read")


def test_berkeley_db_overflow_chain_that_loops_is_refused(tmp_path):
    data = bytearray(BDB.read_bytes())
    struct.pack_into("<I", data, bdb_page(data, 10) + 16, 5)  # page 10 names page 5 again
    struct.pack_into("<I", data, 32, 0xFFFFFFFF)  # and the last page number is far past the file
    started = time.monotonic()
    result = catalog_rootfs(image_with(tmp_path, "/var/lib/rpm/Packages", bytes(data), RHEL8))
    assert time.monotonic() - started < 10
    assert result.packages == []
    assert [str(w) for w in result.warnings] == [
        "/var/lib/rpm/Packages [Packages record on page 2]: corrupt header skipped: "
        "overflow chain from page 3 reaches page 5 a second time",
        "/var/lib/rpm/Packages: rpm database in Berkeley DB format not read, corrupt: "
        "the file ends after page 22, its metadata declares pages up to 4294967295",
    ]


def test_berkeley_db_value_over_the_entry_limit_is_refused():
    records = list(read_hash_records(BDB.read_bytes(), 1000))
    assert [(r.page, r.error) for r in records] == [
        (1, None),
        (2, "hash page 2: entry 1 declares 80880 bytes, over the limit of 1000"),
    ]


def test_ndb_corrupt_blob_loses_that_package_only(tmp_path):
    data = bytearray(NDB.read_bytes())
    _magic, _index, block, _count = struct.unpack_from("<4I", data, 32 + 16 * 13)  # bash's slot
    data[block * 16 + 100] ^= 0xFF
    result = catalog_rootfs(image_with(tmp_path, "/usr/lib/sysimage/rpm/Packages.db", bytes(data), SLES15))
    assert len(result.packages) == 34 and "bash" not in {p.name for p in result.packages}
    assert [str(w) for w in result.warnings] == [
        f"/usr/lib/sysimage/rpm/Packages.db [package 14]: corrupt header skipped: "
        f"blob at byte {block * 16} does not match its Adler-32 checksum"
    ]
    assert result.unread == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (12, 1 << 20, "1048576 slot pages declared, outside 1..2048"),
        (12, 400, "400 slot pages declared, the file of 1374144 bytes holds fewer"),
        (4, 3, "ndb format version 3, only version 0 exists"),
    ],
)
def test_ndb_corrupt_header_is_a_warning(tmp_path, field, value, message):
    data = bytearray(NDB.read_bytes())
    struct.pack_into("<I", data, field, value)
    result = catalog_rootfs(image_with(tmp_path, "/usr/lib/sysimage/rpm/Packages.db", bytes(data), SLES15))
    assert result.packages == []
    assert [str(w) for w in result.warnings] == [
        f"/usr/lib/sysimage/rpm/Packages.db: rpm database in ndb format not read, corrupt: {message}"
    ]
    assert result.unread == ["/usr/lib/sysimage/rpm/Packages.db"]


def test_ndb_slot_pointing_past_the_file_is_a_warning(tmp_path):
    data = bytearray(NDB.read_bytes())
    struct.pack_into("<I", data, 32 + 8, 0xFFFFFFF0)  # package 1's block offset
    result = catalog_rootfs(image_with(tmp_path, "/usr/lib/sysimage/rpm/Packages.db", bytes(data), SLES15))
    assert len(result.packages) == 34
    assert [str(w) for w in result.warnings] == [
        "/usr/lib/sysimage/rpm/Packages.db [package 1]: corrupt header skipped: "
        "block of 260 units at unit 4294967280 is outside the file"
    ]


@pytest.mark.parametrize(
    ("source", "db_path", "os_release"),
    [(BDB, "/var/lib/rpm/Packages", RHEL8), (NDB, "/var/lib/rpm/Packages.db", SLES15)],
)
def test_truncated_and_corrupted_copies_never_crash_or_hang(tmp_path, source, db_path, os_release):
    """Fuzz-style: copies cut at many lengths and copies with random bytes overwritten (a fixed
    seed, so a failure repeats) each give a subset of the real packages, and any loss is a warning
    naming the database."""
    original = source.read_bytes()
    full = {
        (p.name, p.version)
        for p in catalog_rootfs(image_with(tmp_path / "full", db_path, original, os_release)).packages
    }
    rng = random.Random(20)
    copies = [original[:n] for n in (0, 1, 31, 32, 100, 511, 4096, 4097, 8192, len(original) // 2, len(original) - 1)]
    for _ in range(40):
        data = bytearray(original)
        for _ in range(rng.randint(1, 64)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        copies.append(bytes(data))
    for n, data in enumerate(copies):
        started = time.monotonic()
        result = catalog_rootfs(image_with(tmp_path / f"copy{n}", db_path, data, os_release))
        assert time.monotonic() - started < 10, f"copy {n} took too long"
        got = {(p.name, p.version) for p in result.packages}
        assert all(p.cataloger == "rpmdb" for p in result.packages)
        if got != full or data != original:
            assert got <= full or result.warnings, f"copy {n}: packages {got - full} from nowhere"
        if len(got) < len(full):
            assert result.warnings and all(w.file == db_path for w in result.warnings), f"copy {n}: silent loss"
    assert zlib.crc32(original) == zlib.crc32(source.read_bytes())  # the shared file itself is untouched


def run_vigil_catalog(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    vigil = Path(sys.executable).with_name("vigil")
    return subprocess.run([str(vigil), "catalog", str(root), *args], capture_output=True, text=True, timeout=120)


def test_databases_vigil_cannot_read_are_said_not_read_in_the_cli(tmp_path):
    """A btree rpm database and a pacman database: the CLI's table and JSON both say what was not
    read, and the JSON lists the files; never a silent empty list."""
    data = bytearray(BDB.read_bytes())
    struct.pack_into("<I", data, 12, 0x053162)
    root = image_with(tmp_path, "/var/lib/rpm/Packages", bytes(data), RHEL8)
    (root / "var/lib/pacman/local/bash-5.2.015-1").mkdir(parents=True)
    (root / "var/lib/pacman/local/bash-5.2.015-1/desc").write_text("%NAME%\nbash\n")
    table = run_vigil_catalog(root)
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert (
        "warning: /var/lib/rpm/Packages: rpm database in Berkeley DB format not read: a Berkeley DB btree "
        "database, not a hash one" in text
    )
    assert (
        "warning: /var/lib/pacman/local: pacman database (Arch Linux) not read: Vigil has no cataloger for it; "
        "its packages are not listed" in text
    )
    doc = json.loads(run_vigil_catalog(root, "--output", "json").stdout)
    assert doc["packages"] == []
    assert doc["unread_files"] == ["/var/lib/pacman/local", "/var/lib/rpm/Packages"]
    assert doc["incomplete"] is True
