"""A debootstrap'ed Debian bookworm rootfs against dpkg's own view of it."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from vigil.catalog import catalog_rootfs


@pytest.fixture(scope="module")
def result(debian_rootfs):
    return catalog_rootfs(debian_rootfs)


def dpkg_query(rootfs, *args: str) -> str:
    return subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", *args], capture_output=True, text=True, check=True
    ).stdout


def test_dpkg_packages_equal_dpkg_query(debian_rootfs, result):
    expected = sorted(dpkg_query(debian_rootfs, "-W", "-f", "${Package} ${Version}\n").splitlines())
    got = sorted(f"{p.name} {p.version}" for p in result.packages_of("deb"))
    assert got == expected
    assert result.warnings == []
    assert result.os is not None and result.os.id == "debian" and result.os.version_id == "12"
    assert {p.ecosystem for p in result.packages_of("deb")} == {"Debian:12"}


def test_sources_equal_dpkg_query(debian_rootfs, result):
    # ${source:Package} / ${source:Version}: dpkg's own parsing of Source:.
    expected = sorted(
        dpkg_query(debian_rootfs, "-W", "-f", "${Package} ${source:Package} ${source:Version}\n").splitlines()
    )
    got = sorted(f"{p.name} {p.source_name} {p.source_version}" for p in result.packages_of("deb"))
    assert got == expected


def test_owned_files_equal_dpkg_listfiles(debian_rootfs, result):
    for name in ("bash", "coreutils", "libc6"):
        listed = dpkg_query(debian_rootfs, "-L", name).splitlines()
        expected = [
            p
            for p in listed
            if p != "/."
            and not (os.path.isdir(debian_rootfs / p.lstrip("/")) and not os.path.islink(debian_rootfs / p.lstrip("/")))
        ]
        [pkg] = [p for p in result.packages if p.name == name]
        assert pkg.files == expected, name


def test_manifest_hashes_and_modes(debian_rootfs, result):
    real = debian_rootfs / "usr/bin/bash"
    rec = result.manifest.files["/usr/bin/bash"]
    assert rec.sha256 == hashlib.sha256(real.read_bytes()).hexdigest()
    assert (rec.size, rec.executable) == (real.stat().st_size, True)
    assert result.manifest.files["/etc/debian_version"].executable is False
    # usrmerge: /bin is a symlink in bookworm
    assert result.manifest.symlinks["/bin"].target == "usr/bin"
    n_files = sum(
        1
        for _root, _dirs, files in os.walk(debian_rootfs)
        for f in files
        if os.path.isfile(os.path.join(_root, f)) and not os.path.islink(os.path.join(_root, f))
    )
    assert len(result.manifest.files) == n_files
