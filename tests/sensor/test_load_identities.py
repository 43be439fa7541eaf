"""Resolving a container's watched package paths to file identities, on a real directory tree standing for its
root (no kernel): what is entered, what is never followed or opened, and the bounds."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from vigil.sensor.events import ActivityEvent, ProcessHeader
from vigil.sensor.load_identities import load_key, resolve_paths

DP = "/usr/lib/python3/dist-packages"


def ident(p: Path) -> tuple[int, int]:
    st = os.stat(p, follow_symlinks=False)
    return st.st_dev, st.st_ino


def tree(root: Path, outside: Path) -> None:
    pkg = root / DP.lstrip("/") / "jinja2"
    (pkg / "ext" / "deep").mkdir(parents=True)
    for rel in ("__init__.py", "ext/a.py", "ext/deep/b.py"):
        (pkg / rel).write_text("x = 1\n")
    os.mkfifo(pkg / "fifo")  # a FIFO must never be opened (it would block)
    (outside / "host.py").write_text("host\n")
    (pkg / "escape.py").symlink_to(outside / "host.py")  # a link out: not followed
    (root / "opt" / "real").mkdir(parents=True)
    (root / "opt" / "real" / "m.py").write_text("m\n")
    (root / "app").mkdir()
    (root / "app" / "six.py").write_text("six\n")
    # An absolute link inside the container: resolved in its root, not in ours.
    (root / "usr" / "lib" / "linked").symlink_to("/opt/real")


def test_watched_paths_resolve_to_the_regular_files_they_name_in_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    tree(root, outside)
    (outside / "opt" / "real").mkdir(parents=True)
    (outside / "opt" / "real" / "m.py").write_text("ours, not the container's\n")
    got = resolve_paths(root, [f"{DP}/jinja2/", "/app/six.py", "/usr/lib/linked/m.py", "/missing/", "/app/", "/app"])
    pkg = root / DP.lstrip("/") / "jinja2"
    assert got == {
        ident(pkg / "__init__.py"): f"{DP}/jinja2/__init__.py",
        ident(pkg / "ext" / "a.py"): f"{DP}/jinja2/ext/a.py",
        ident(pkg / "ext" / "deep" / "b.py"): f"{DP}/jinja2/ext/deep/b.py",
        ident(root / "app" / "six.py"): "/app/six.py",
        ident(root / "opt" / "real" / "m.py"): "/usr/lib/linked/m.py",
    }


def test_resolution_is_bounded_in_files_and_entries_visited(tmp_path: Path) -> None:
    pkg = tmp_path / "site-packages" / "big"
    pkg.mkdir(parents=True)
    for i in range(10):
        (pkg / f"m{i}.py").write_text("")
    assert sorted(resolve_paths(tmp_path, ["/site-packages/big/"], max_files=3).values()) == [
        "/site-packages/big/m0.py",
        "/site-packages/big/m1.py",
        "/site-packages/big/m2.py",
    ]
    assert len(resolve_paths(tmp_path, ["/site-packages/big/"], max_entries=5)) == 4


def test_a_root_that_cannot_be_opened_is_an_error_not_an_empty_set(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_paths(tmp_path / "gone", ["/app/"])


def test_keys_use_the_kernels_device_encoding() -> None:
    dev = os.makedev(259, 3)
    assert load_key(77, (dev, 42)) == struct.pack("<QQII", 77, 42, (259 << 20) | 3, 0)
    proc = ProcessHeader(7, 7, 1, 0, 0, 77, 0, 0, 1, 1, "python3")
    ev = ActivityEvent(proc, "package_load", 3, 0, 0, "/x", "", "", None, False, False, 42, dev, 9, os.makedev(8, 1))
    assert ev.load_key() == load_key(77, (dev, 42)) + struct.pack("<QII", 9, (8 << 20) | 1, 0)
