"""RPM: packages built with rpmbuild and installed with rpm into a sqlite
rpmdb (Debian's rpm 4.18), against ``rpm -qa`` and ``rpm -ql``."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from vigil.catalog import catalog_rootfs

SPEC = """Name: {name}
Version: {version}
Release: {release}
{epoch}Summary: a test package for vigil
License: MIT
BuildArch: noarch
%description
test
%install
mkdir -p %{{buildroot}}/usr/share/{name} %{{buildroot}}/usr/bin
echo {name} > %{{buildroot}}/usr/share/{name}/readme
printf '#!/bin/sh\\necho hi\\n' > %{{buildroot}}/usr/bin/{name}
chmod 755 %{{buildroot}}/usr/bin/{name}
%files
/usr/bin/{name}
/usr/share/{name}
"""
PACKAGES = [("vigil-hello", "1.2.3", "4", "2"), ("vigil-world", "0.9", "1.el9", None)]
RPM_DEFINES = ["--define", "_db_backend sqlite", "--dbpath", "/var/lib/rpm"]


@pytest.fixture(scope="module")
def rpm_root(tmp_path_factory) -> Path:
    for tool in ("rpmbuild", "rpm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install rpm)")
    work = tmp_path_factory.mktemp("rpm")
    root = work / "root"
    root.mkdir()
    for name, version, release, epoch in PACKAGES:
        spec = work / f"{name}.spec"
        spec.write_text(
            SPEC.format(name=name, version=version, release=release, epoch=f"Epoch: {epoch}\n" if epoch else "")
        )
        subprocess.run(
            ["rpmbuild", "--define", f"_topdir {work}/top", "-bb", str(spec)], check=True, capture_output=True
        )
    rpms = sorted(str(p) for p in (work / "top/RPMS/noarch").glob("*.rpm"))
    subprocess.run(
        ["rpm", "--root", str(root), *RPM_DEFINES, "-i", "--nodeps", "--noscripts", *rpms],
        check=True,
        capture_output=True,
    )
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/os-release").write_text('ID="rocky"\nVERSION_ID="9.3"\n')
    return root


def rpm_query(root: Path, *args: str) -> list[str]:
    return subprocess.run(
        ["rpm", "--root", str(root), *RPM_DEFINES, *args], check=True, capture_output=True, text=True
    ).stdout.splitlines()


def test_rpm_packages_equal_rpm_qa(rpm_root):
    result = catalog_rootfs(rpm_root)
    assert result.warnings == []
    expected = rpm_query(rpm_root, "-qa", "--qf", "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH}\n")
    assert sorted(f"{p.name} {p.version} {p.arch}" for p in result.packages) == sorted(expected)
    by = {p.name: p for p in result.packages}
    hello = by["vigil-hello"]
    assert (hello.version, hello.source_name, hello.source_version) == ("2:1.2.3-4", "vigil-hello", "1.2.3-4")
    assert hello.purl == (
        "pkg:rpm/rocky/vigil-hello@1.2.3-4?arch=noarch&distro=rocky-9.3&epoch=2&upstream=vigil-hello-1.2.3-4.src.rpm"
    )
    assert hello.ecosystem == "Rocky Linux:9"
    assert hello.found_in == "/var/lib/rpm/rpmdb.sqlite"
    for p in result.packages:
        listed = rpm_query(rpm_root, "-ql", p.name)
        assert p.files == [f for f in listed if not (rpm_root / f.lstrip("/")).is_dir()]


def test_corrupt_rpm_header_is_a_warning(rpm_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(rpm_root, root, symlinks=True)
    db = root / "var/lib/rpm/rpmdb.sqlite"
    with sqlite3.connect(db) as conn:
        good = conn.execute("SELECT blob FROM Packages ORDER BY hnum LIMIT 1").fetchone()[0]
        conn.execute("INSERT INTO Packages (hnum, blob) VALUES (100, ?)", (good[:200],))
        conn.execute("INSERT INTO Packages (hnum, blob) VALUES (101, ?)", (b"\x00\x00",))
    conn.close()
    result = catalog_rootfs(root)
    assert sorted(p.name for p in result.packages) == ["vigil-hello", "vigil-world"]
    assert [(w.file, w.entry) for w in result.warnings] == [
        ("/var/lib/rpm/rpmdb.sqlite", "Packages row 100"),
        ("/var/lib/rpm/rpmdb.sqlite", "Packages row 101"),
    ]
    assert result.warnings[1].message == "corrupt header skipped: header blob shorter than its 8-byte preamble"
    assert result.warnings[0].message.startswith("corrupt header skipped: header blob of 200 bytes is shorter than")
