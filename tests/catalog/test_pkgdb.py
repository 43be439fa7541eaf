"""Every file of shared/data/pkgdb, catalogued as it would sit in an image."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from vigil.catalog import catalog_rootfs

from .conftest import PKGDB

pytestmark = pytest.mark.skipif(not PKGDB.is_dir(), reason=f"shared test data missing: {PKGDB}")

DEBIAN_12 = 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
ALPINE_316 = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.16.2\nPRETTY_NAME="Alpine Linux v3.16"\n'


def rootfs_with(tmp_path: Path, source: Path, db_path: str, os_release: str | None) -> Path:
    root = tmp_path / "root"
    target = root / db_path.lstrip("/")
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    if os_release is not None:
        (root / "usr/lib").mkdir(parents=True, exist_ok=True)
        (root / "usr/lib/os-release").write_text(os_release)
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    return root


def nv(result) -> list[tuple[str, str]]:
    return [(p.name, p.version) for p in result.packages]


def dpkg(tmp_path: Path, name: str):
    return catalog_rootfs(rootfs_with(tmp_path, PKGDB / "debian" / name, "/var/lib/dpkg/status", DEBIAN_12))


def test_dpkg_status_single(tmp_path):
    r = dpkg(tmp_path, "status-single")
    assert r.warnings == []
    [apt] = r.packages
    assert (apt.name, apt.version, apt.source_name, apt.source_version) == ("apt", "1.8.2", "apt-dev", "1.8.2")
    assert apt.arch == "amd64"
    assert apt.ecosystem == "Debian:12"
    assert apt.purl == "pkg:deb/debian/apt@1.8.2?arch=amd64&distro=debian-12&upstream=apt-dev"
    assert apt.cataloger == "dpkg" and apt.found_in == "/var/lib/dpkg/status"


def test_dpkg_status_multiple_skips_nameless_and_versionless(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="vigil.catalog"):
        r = dpkg(tmp_path, "status-multiple")
    assert nv(r) == [("tzdata", "2020a-0+deb10u1"), ("util-linux", "2.33.1-0.1")]
    assert r.packages[0].source_name == "tzdata-dev"
    assert r.packages[1].source_name == "util-linux"
    assert [str(w) for w in r.warnings] == [
        "/var/lib/dpkg/status [stanza at line 1]: entry skipped: no Package field",
        "/var/lib/dpkg/status [no-version]: entry skipped: no Version field",
    ]
    assert [rec.getMessage() for rec in caplog.records] == [str(w) for w in r.warnings]


def test_dpkg_status_corrupt_is_a_warning_not_a_crash(tmp_path):
    r = dpkg(tmp_path, "status-corrupt")
    assert r.packages == []
    assert [str(w) for w in r.warnings] == [
        "/var/lib/dpkg/status [stanza at line 1]: corrupt entry skipped: line 5: neither a 'Field: value' "
        "line nor a continuation: 'Insterface to the configuration settings'; "
        "line 6: continuation line without a field"
    ]


def test_dpkg_status_deinstall_is_skipped(tmp_path):
    r = dpkg(tmp_path, "status-deinstall")
    [kernel] = r.packages
    assert (kernel.name, kernel.version) == ("linux-image-6.14.0-1012-aws", "6.14.0-1012.12~24.04.1")
    assert (kernel.source_name, kernel.source_version) == ("linux-signed-aws-6.14", "6.14.0-1012.12~24.04.1")
    assert [str(w) for w in r.warnings] == [
        "/var/lib/dpkg/status [linux-image-6.8.0-1029-aws]: entry skipped: status "
        "'deinstall ok config-files': its files are not on disk"
    ]


def test_dpkg_installed_size_with_unit(tmp_path):
    r = dpkg(tmp_path, "status-installed-size-4KB")
    [apt] = r.packages
    assert (apt.name, apt.version, apt.metadata) == ("apt", "1.8.2", {"installed_size": "4KB"})
    assert r.warnings == []


def test_dpkg_sources_with_versions_and_epochs(tmp_path):
    r = dpkg(tmp_path, "status-coreutils-relationships")
    assert r.warnings == []
    got = {p.name: (p.version, p.source_name, p.source_version) for p in r.packages}
    assert got == {
        "coreutils": ("9.1-1", "coreutils", "9.1-1"),
        "gcc-12-base": ("12.2.0-14", "gcc-12", "12.2.0-14"),
        "libacl1": ("2.3.1-3", "acl", "2.3.1-3"),
        "libattr1": ("1:2.5.1-4", "attr", "1:2.5.1-4"),
        "libc6": ("2.36-9+deb12u1", "glibc", "2.36-9+deb12u1"),
        "libgcc-s1": ("12.2.0-14", "gcc-12", "12.2.0-14"),
        "libgmp10": ("2:6.2.1+dfsg1-1.1", "gmp", "2:6.2.1+dfsg1-1.1"),
        "libpcre2-8-0": ("10.42-1", "pcre2", "10.42-1"),
        "libselinux1": ("3.4-1+b6", "libselinux", "3.4-1"),
    }
    selinux = next(p for p in r.packages if p.name == "libselinux1")
    assert selinux.purl == (
        "pkg:deb/debian/libselinux1@3.4-1%2Bb6?arch=arm64&distro=debian-12&upstream=libselinux%403.4-1"
    )


def test_dpkg_distroless_status_d(tmp_path):
    root = rootfs_with(
        tmp_path,
        PKGDB / "debian" / "distroless-status.d-libsqlite3-0",
        "/var/lib/dpkg/status.d/libsqlite3-0",
        DEBIAN_12,
    )
    (root / "var/lib/dpkg/status.d/libsqlite3-0.md5sums").write_text(
        "d41d8cd98f00b204e9800998ecf8427e  usr/lib/aarch64-linux-gnu/libsqlite3.so.0.8.6\n"
    )
    r = catalog_rootfs(root)
    assert r.warnings == []
    [pkg] = r.packages
    assert (pkg.name, pkg.version, pkg.source_name, pkg.source_version, pkg.arch) == (
        "libsqlite3-0",
        "3.34.1-3",
        "sqlite3",
        "3.34.1-3",
        "arm64",
    )
    assert pkg.found_in == "/var/lib/dpkg/status.d/libsqlite3-0"
    assert pkg.files == ["/usr/lib/aarch64-linux-gnu/libsqlite3.so.0.8.6"]


ALPINE_EXPECTED = [
    ("alpine-baselayout", "3.2.0-r22"),
    ("alpine-baselayout-data", "3.2.0-r22"),
    ("alpine-keys", "2.4-r1"),
    ("apk-tools", "2.12.9-r3"),
    ("busybox", "1.35.0-r17"),
    ("ca-certificates-bundle", "20220614-r0"),
    ("libc-utils", "0.7.2-r3"),
    ("libcrypto1.1", "1.1.1q-r0"),
    ("libssl1.1", "1.1.1q-r0"),
    ("musl", "1.2.3-r0"),
    ("musl-utils", "1.2.3-r0"),
    ("scanelf", "1.3.4-r0"),
    ("ssl_client", "1.35.0-r17"),
    ("zlib", "1.2.12-r3"),
]


def test_apk_installed_multiple(tmp_path):
    r = catalog_rootfs(
        rootfs_with(tmp_path, PKGDB / "alpine" / "installed-multiple", "/lib/apk/db/installed", ALPINE_316)
    )
    assert r.warnings == []
    assert r.os is not None and (r.os.id, r.os.version_id) == ("alpine", "3.16.2")
    assert nv(r) == ALPINE_EXPECTED
    by = {p.name: p for p in r.packages}
    assert by["busybox"].files == [
        "/bin/busybox",
        "/bin/sh",
        "/etc/securetty",
        "/etc/udhcpd.conf",
        "/etc/logrotate.d/acpid",
        "/etc/network/if-up.d/dad",
        "/usr/share/udhcpc/default.script",
    ]
    assert by["musl"].files == ["/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1"]
    assert by["libc-utils"].files == []
    assert (by["libssl1.1"].source_name, by["libssl1.1"].source_version) == ("openssl", "1.1.1q-r0")
    assert by["libssl1.1"].ecosystem == "Alpine:v3.16"
    assert (
        by["libssl1.1"].purl == "pkg:apk/alpine/libssl1.1@1.1.1q-r0?arch=x86_64&distro=alpine-3.16.2&upstream=openssl"
    )
    assert len(by["alpine-keys"].files) == 41  # its R: lines


def test_apk_installed_corrupt(tmp_path):
    r = catalog_rootfs(
        rootfs_with(tmp_path, PKGDB / "alpine" / "installed-corrupt", "/lib/apk/db/installed", ALPINE_316)
    )
    assert nv(r) == [("alpine-baselayout-data", "3.2.0-r22")]
    assert len(r.packages[0].files) == 14 and r.packages[0].files[0] == "/etc/fstab"
    assert [str(w) for w in r.warnings] == [
        "/lib/apk/db/installed [record at line 1]: corrupt entry skipped: line 1: not a 'X:value' line: "
        "'this is a corrupt db'"
    ]


def test_os_package_without_os_release_has_no_ecosystem(tmp_path):
    r = catalog_rootfs(rootfs_with(tmp_path, PKGDB / "debian" / "status-single", "/var/lib/dpkg/status", None))
    assert r.os is None
    assert r.packages[0].ecosystem is None
    assert r.packages[0].purl == "pkg:deb/debian/apt@1.8.2?arch=amd64&upstream=apt-dev"
