"""What the real-BPF tests need, and a reason naming what is missing."""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

from vigil.sensor.loader import effective_capabilities, missing_capabilities


def bpf_unavailable() -> str | None:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "kernel BTF (/sys/kernel/btf/vmlinux) missing"
    if ctypes.util.find_library("bpf") is None:
        return "libbpf.so.1 missing (apt-get install libbpf1)"
    missing = missing_capabilities(effective_capabilities(Path("/proc/self/status").read_text()))
    if missing:
        return f"missing capabilities {missing}"
    return None


def own_cgroup_id() -> int:
    """The unified-hierarchy cgroup id of this test process."""
    from vigil.sensor.cgroups import unified_mount

    root = unified_mount(Path("/proc/self/mountinfo").read_text())
    assert root is not None, "no cgroup2 mount"
    rel = next(
        line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")
    )
    return os.stat(str(root) + rel).st_ino
