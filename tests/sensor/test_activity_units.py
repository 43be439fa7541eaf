"""Watched-path tables, activity decoding and naming, without the kernel."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from vigil.sensor.activity import ActivityAggregator, ProcessTable, describe, ns_flag_names, open_flag_names
from vigil.sensor.events import ACTIVITY_SIZE, ActivityEvent, EventDecodeError, decode_event
from vigil.sensor.watch import WATCH_PROC, WATCH_READ, WATCH_WRITE, flags_of, normalise, watch_entries

ENTRIES = watch_entries()


def _raw(kind: int, path: bytes = b"", flags: int = 0, result: int = 0, aux: int = 0, name: bytes = b"") -> bytes:
    header = struct.pack("<6I3Q2I16s", 4, 7, 7, 1, 0, 0, 99, 0, 0, 0, 0, b"cat")
    return header + struct.pack("<IIqQQ256s256s64sQQII", kind, flags, result, aux, 0, path, b"", name, 0, 0, 0, 0)


def test_watch_entries_carry_the_flags_of_shorter_prefixes() -> None:
    by_path = {e.path: e for e in ENTRIES}
    assert (by_path["/etc/shadow"].prefix_flags, by_path["/etc/shadow"].exact_flags) == (WATCH_WRITE, WATCH_READ)
    assert by_path["/root/.ssh/"].prefix_flags == WATCH_WRITE | WATCH_READ
    assert by_path["/proc/sys/"].prefix_flags == WATCH_WRITE | WATCH_PROC
    assert flags_of("/etc/shadow", ENTRIES) == WATCH_WRITE | WATCH_READ
    assert flags_of("/etc/shadow-", ENTRIES) == WATCH_WRITE
    assert flags_of("/proc/12/environ", ENTRIES) == WATCH_PROC | WATCH_READ
    assert flags_of("/proc/12/status", ENTRIES) == WATCH_PROC
    assert flags_of("/tmp/x", ENTRIES) == 0
    with pytest.raises(ValueError, match="watched path 'etc/' must be absolute and shorter than 256 bytes"):
        watch_entries(write=("etc/",))


def test_normalise_resolves_dots_against_the_cwd() -> None:
    assert normalise("../etc/./passwd", "/tmp") == "/etc/passwd"
    assert normalise("/tmp/../../etc//shadow", None) == "/etc/shadow"
    assert normalise("x", None) is None


def test_activity_records_decode_and_refuse_unknown_kinds() -> None:
    ev = decode_event(_raw(2, b"/etc/shadow", flags=1 | 2, result=3))
    assert isinstance(ev, ActivityEvent) and len(_raw(2)) == ACTIVITY_SIZE
    assert (ev.kind, ev.path, ev.result, ev.upper_layer, ev.unresolved) == ("file_read", "/etc/shadow", 3, True, False)
    assert decode_event(_raw(1, b"/etc/x")).upper_layer is None  # not on overlayfs
    with pytest.raises(EventDecodeError, match="activity record has unknown kind 99"):
        decode_event(_raw(99))


def test_describe_names_targets_and_details(tmp_path) -> None:
    table = ProcessTable(tmp_path)  # an empty /proc: every process is gone
    assert open_flag_names(0o1101) == "O_WRONLY|O_CREAT|O_TRUNC" and ns_flag_names(0x20020000) == (
        "CLONE_NEWNS|CLONE_NEWPID"
    )
    unshare = decode_event(_raw(8, aux=0x00020000))
    assert isinstance(unshare, ActivityEvent)
    assert describe(unshare, table, ENTRIES) == ("CLONE_NEWNS", {"flags": "CLONE_NEWNS"})
    memfd = decode_event(_raw(13, name=b"x"))
    assert isinstance(memfd, ActivityEvent)
    assert describe(memfd, table, ENTRIES) == ("memfd:x", {"name": "x", "flags": "0x0"})
    # A path the kernel left to user space: normalised, then filtered like the kernel does.
    dotted = decode_event(_raw(1, b"/tmp/../etc/passwd", flags=4, aux=0o1))
    assert isinstance(dotted, ActivityEvent)
    assert describe(dotted, table, ENTRIES) == ("/etc/passwd", {"flags": "O_WRONLY"})
    elsewhere = decode_event(_raw(1, b"/etc/../tmp/x", flags=4, aux=0o1))
    assert isinstance(elsewhere, ActivityEvent) and describe(elsewhere, table, ENTRIES) is None
    assert ActivityAggregator().records({}) == []


def _fake_process(proc: Path, pid: int, comm: str, ppid: int, ns: Path | None = None) -> None:
    (proc / str(pid) / "ns").mkdir(parents=True)
    (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} 0 0\n")
    if ns is None:
        (proc / str(pid) / "ns" / "pid").write_text("")
    else:
        os.link(ns, proc / str(pid) / "ns" / "pid")  # same inode: the same pid namespace


def test_parents_of_a_gone_process_stop_at_its_pid_namespace(tmp_path: Path) -> None:
    # A short-lived `cat` run by a shell inside the container is gone by the time its open is decoded; the
    # walk up from its parent must still stop at the shim, which lives in the host's pid namespace.
    proc = tmp_path / "proc"
    _fake_process(proc, 50, "containerd-shim", 1)
    _fake_process(proc, 60, "sh", 50)
    _fake_process(proc, 61, "sleep", 60, ns=proc / "60" / "ns" / "pid")
    container_ns = os.stat(proc / "60" / "ns" / "pid").st_ino
    table = ProcessTable(proc)
    assert table.parents(70, 60, container_ns) == ["sh"]
    assert table.parents(61, 60) == ["sh"]  # alive: its own namespace is read from /proc
    assert table.info(70, 60, container_ns).parents == ["sh"]
