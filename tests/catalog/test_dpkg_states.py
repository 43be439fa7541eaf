"""dpkg's installed states against ``dpkg-query --admindir <dir> -W``, on a status file the test
writes with a package in every state dpkg knows, and distroless ``status.d`` with the control
members distroless puts beside each stanza file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vigil.catalog import catalog_rootfs

STATES = [
    ("installed", "install"),
    ("half-installed", "install"),
    ("unpacked", "install"),
    ("half-configured", "install"),
    ("triggers-awaited", "install"),
    ("triggers-pending", "install"),
    ("config-files", "deinstall"),
    ("not-installed", "purge"),
]


def stanza(name: str, status: str, version: str, extra: str = "") -> str:
    return (
        f"Package: {name}\nStatus: {status}\nPriority: optional\nSection: misc\n"
        f"Maintainer: Vigil <vigil@example.com>\nArchitecture: amd64\nVersion: {version}\n{extra}"
        "Description: a package in one of dpkg's states\n"
    )


def status_text() -> str:
    out = []
    for n, (state, want) in enumerate(STATES):
        extra = {"triggers-awaited": "Triggers-Awaited: p-installed\n", "triggers-pending": "Triggers-Pending: x\n"}
        out.append(stanza(f"p-{state}", f"{want} ok {state}", f"1.{n}", extra.get(state, "")))
    out.append(stanza("p-held", "hold ok installed", "2.0"))
    return "\n".join(out)


def dpkg_query(admindir: Path) -> list[tuple[str, str, str]]:
    """(package, version, status abbreviation) of every package dpkg-query -W shows."""
    if shutil.which("dpkg-query") is None:
        pytest.fail("dpkg-query is not installed")
    proc = subprocess.run(
        ["dpkg-query", "--admindir", str(admindir), "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(tuple(line.split("\t")[:3]) for line in proc.stdout.splitlines())  # type: ignore[misc]


def test_packages_in_every_state_with_files_on_disk_equal_dpkg_query(tmp_path):
    root = tmp_path / "root"
    admindir = root / "var/lib/dpkg"
    (admindir / "updates").mkdir(parents=True)
    (admindir / "status").write_text(status_text())
    (admindir / "available").write_text("")
    shown = dpkg_query(admindir)
    # dpkg-query -W shows every package but the purged (not-installed) one, config-files included;
    # a config-files package was removed (only its conffiles are left), so Vigil leaves it out.
    assert [(p, s) for p, _v, s in shown] == [
        ("p-config-files", "rc "),
        ("p-half-configured", "iF "),
        ("p-half-installed", "iH "),
        ("p-held", "hi "),
        ("p-installed", "ii "),
        ("p-triggers-awaited", "iW "),
        ("p-triggers-pending", "it "),
        ("p-unpacked", "iU "),
    ]
    result = catalog_rootfs(root)
    assert sorted((p.name, p.version) for p in result.packages) == [(p, v) for p, v, s in shown if s[1] != "c"]
    assert [str(w) for w in result.warnings] == [
        "/var/lib/dpkg/status [p-config-files]: entry skipped: status 'deinstall ok config-files': "
        "its files are not on disk",
        "/var/lib/dpkg/status [p-not-installed]: entry skipped: status 'purge ok not-installed': "
        "its files are not on disk",
    ]


def test_status_d_reads_stanza_files_only(tmp_path):
    """distroless writes, per package, the stanza file and its control members (md5sums,
    maintainer scripts, conffiles...); a package name may itself hold dots."""
    root = tmp_path / "root"
    status_d = root / "var/lib/dpkg/status.d"
    status_d.mkdir(parents=True)
    (status_d / "base-files").write_text(stanza("base-files", "install ok installed", "12.4+deb12u5"))
    (status_d / "python3.11").write_text(stanza("python3.11", "install ok installed", "3.11.2-6"))
    (status_d / "base-files.md5sums").write_text("d41d8cd98f00b204e9800998ecf8427e  etc/debian_version\n")
    for member in ("preinst", "postinst", "prerm", "postrm"):
        (status_d / f"base-files.{member}").write_text("#!/bin/sh\nset -e\nexit 0\n")
    (status_d / "base-files.conffiles").write_text("/etc/debian_version\n")
    result = catalog_rootfs(root)
    assert result.warnings == []
    assert sorted((p.name, p.version, p.found_in) for p in result.packages) == [
        ("base-files", "12.4+deb12u5", "/var/lib/dpkg/status.d/base-files"),
        ("python3.11", "3.11.2-6", "/var/lib/dpkg/status.d/python3.11"),
    ]
    assert next(p for p in result.packages if p.name == "base-files").files == ["/etc/debian_version"]
