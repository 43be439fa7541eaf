"""The kernel's process events, decoded from ring-buffer records.

The byte layouts mirror ``struct event_header``, ``struct exec_event``,
``struct exit_event`` and ``struct activity_event`` in bpf/vigil.bpf.c; a record whose size does not match
its type is refused with an error naming both, never half-read.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import TypeVar

from vigil.wire.runtime import ActivityKind

EVENT_EXEC, EVENT_FORK, EVENT_EXIT, EVENT_ACTIVITY, EVENT_PREVENTED = 1, 2, 3, 4, 5
EXEC_ARGV_TRUNCATED, EXEC_ARGV_FAULT, EXEC_UPPER_KNOWN, EXEC_UPPER, EXEC_UNLINKED = 1, 2, 4, 8, 16
ACT_UPPER_KNOWN, ACT_UPPER, ACT_UNRESOLVED, ACT_TRUNCATED, ACT_IDENTITY, ACT_WORKLOAD = 1, 2, 4, 8, 16, 32
PREVENT_ENFORCE, PREVENT_KILLED, PREVENT_UPPER_KNOWN, PREVENT_UPPER, PREVENT_UNLINKED = 1, 2, 4, 8, 16

# enum activity_kind in vigil.bpf.c -> the wire's ActivityKind.
ACTIVITY_KINDS: dict[int, ActivityKind] = {
    1: "file_write",
    2: "file_read",
    3: "file_rename",
    4: "file_chmod",
    5: "file_unlink",
    6: "ptrace",
    7: "setns",
    8: "unshare",
    9: "mount",
    10: "pivot_root",
    11: "bpf_load",
    12: "module_load",
    13: "memfd_create",
    14: "package_load",  # matched by the opened file's identity in load_files (vigil.sensor.load_identities)
}

_KIND_CODES = {kind: code for code, kind in ACTIVITY_KINDS.items()}

_HEADER = struct.Struct("<6I3Q2I16s")
_EXEC_TAIL = struct.Struct("<QqqIIIIII256s256s1024s64s")
_EXIT_TAIL = struct.Struct("<iI")
_ACTIVITY_TAIL = struct.Struct("<IIqQQ256s256s64sQQII")
_PREVENTED_TAIL = struct.Struct("<IIIiQqqIIQII256s256s64s1024s")
EXEC_SIZE = _HEADER.size + _EXEC_TAIL.size
FORK_SIZE = _HEADER.size
EXIT_SIZE = _HEADER.size + _EXIT_TAIL.size
ACTIVITY_SIZE = _HEADER.size + _ACTIVITY_TAIL.size
PREVENTED_SIZE = _HEADER.size + _PREVENTED_TAIL.size


class EventDecodeError(ValueError):
    pass


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def kernel_dev_to_st_dev(kdev: int) -> int:
    """The kernel's internal dev_t (12-bit major << 20 | minor) as stat()'s st_dev."""
    return os.makedev(kdev >> 20, kdev & 0xFFFFF)


def st_dev_to_kernel_dev(st_dev: int) -> int:
    """stat()'s st_dev in the kernel's internal encoding, as BPF reads it from a super_block's s_dev."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def split_argv(raw: bytes) -> list[str]:
    """argv strings from the NUL-separated argument area; a cut-off last one is kept as is."""
    if not raw:
        return []
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "surrogateescape") for p in parts]


@dataclass(frozen=True)
class ProcessHeader:
    pid: int
    tgid: int
    ppid: int
    uid: int
    gid: int
    cgroup_id: int
    start_boottime_ns: int
    timestamp_boot_ns: int
    mnt_ns: int
    pid_ns: int
    comm: str


@dataclass(frozen=True)
class FileIdentity:
    """Which file, as the kernel saw it: enough to key a hash cache without opening it."""

    st_dev: int
    ino: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ExecEvent:
    proc: ProcessHeader
    filename: str  # the path given to execve
    interp: str  # the file actually loaded: differs from filename for #! scripts
    argv: list[str] = field(hash=False)
    argc: int
    argv_truncated: bool
    argv_fault: bool
    file: FileIdentity
    upper_layer: bool | None = None  # on the overlay's upper layer; None: not on overlayfs
    unlinked: bool = False  # the file has no name left: deleted, or a memfd
    dname: str = ""  # the file's own name in the kernel (memfd:<name> for a memfd)
    argv_raw: bytes = field(default=b"", hash=False, repr=False)  # the argument area as read

    @property
    def path(self) -> str:
        """The file the kernel loaded: for a deleted file or memfd, named as /proc names it."""
        if not self.unlinked:
            return self.interp
        if self.dname.startswith("memfd:"):
            return f"/{self.dname} (deleted)"
        return f"{self.interp} (deleted)"

    def key(self) -> bytes:
        """This exec's struct exec_key, for the kernel's table of execs already seen."""
        f = self.file
        kdev = st_dev_to_kernel_dev(f.st_dev)
        mtime_sec, mtime_nsec = divmod(f.mtime_ns, 1_000_000_000)
        raw = self.filename.encode("utf-8", "surrogateescape")[:255]
        return _EXEC_KEY.pack(self.proc.cgroup_id, f.ino, mtime_sec, mtime_nsec, kdev, raw, self.argv_raw)


_EXEC_KEY = struct.Struct("<QQqII256s1024s")


@dataclass(frozen=True)
class ActivityEvent:
    """A file access on a watched path, or a kernel operation, reported at syscall exit."""

    proc: ProcessHeader
    kind: ActivityKind
    result: int
    aux: int
    aux2: int
    path: str
    path2: str
    name: str
    upper_layer: bool | None
    unresolved: bool
    truncated: bool
    # Opens: the opened file's and the process's executable's identity (st_dev form); 0 when not known.
    ino: int = 0
    dev: int = 0
    exe_ino: int = 0
    exe_dev: int = 0
    by_identity: bool = False  # a package_load the kernel matched by (device, inode), not by path
    # The process ran a program inside its container (or descends from one that did): never
    # the runtime's own init, whatever name it gave itself.
    workload: bool = False

    def key(self) -> bytes:
        """This activity's struct activity_key, for the kernel's table of activities already seen. A
        package_load matched by path is, to the kernel, a read of a read-watched path."""
        raw = self.path.encode("utf-8", "surrogateescape")[:255]
        code = _KIND_CODES["file_read" if self.kind == "package_load" else self.kind]
        return _ACTIVITY_KEY.pack(self.proc.cgroup_id, code, 0, raw)

    def load_key(self) -> bytes:
        """This package load's struct load_seen (cgroup, file identity, executable's identity), for the
        kernel's table of package loads already seen."""
        return _LOAD_SEEN.pack(
            self.proc.cgroup_id,
            self.ino,
            st_dev_to_kernel_dev(self.dev),
            0,
            self.exe_ino,
            st_dev_to_kernel_dev(self.exe_dev),
            0,
        )


_ACTIVITY_KEY = struct.Struct("<QII256s")
_LOAD_SEEN = struct.Struct("<QQIIQII")


@dataclass(frozen=True)
class PreventedEvent:
    """An exec or escape syscall a prevention rule acted on: killed (enforce) or would have (audit)."""

    proc: ProcessHeader
    rule_bit: int  # one bit of enum prevent_rule (vigil.sensor.prevention.RULE_BITS)
    enforce: bool
    killed: bool
    operation: ActivityKind | None  # None: an exec; else the escape syscall's activity kind
    signal_result: int
    file: FileIdentity | None  # the exec'd file; None for an escape
    aux: int  # escape: the CLONE_* flags of unshare / setns
    filename: str  # exec: the path given to execve; escape: the target (mount point, written file)
    interp: str
    dname: str
    argv: list[str] = field(hash=False)
    upper_layer: bool | None = None
    unlinked: bool = False

    @property
    def path(self) -> str:
        """The file the kernel loaded (a deleted file or memfd named as /proc names it), or the target."""
        if self.operation is not None:
            return self.filename
        if self.unlinked:
            return f"/{self.dname} (deleted)" if self.dname.startswith("memfd:") else f"{self.interp} (deleted)"
        return self.interp


@dataclass(frozen=True)
class ForkEvent:
    proc: ProcessHeader


@dataclass(frozen=True)
class ExitEvent:
    proc: ProcessHeader
    exit_code: int  # the raw wait status

    @property
    def exit_status(self) -> int | None:
        """The exit status when the process exited normally, else None."""
        return None if self.exit_code & 0x7F else (self.exit_code >> 8) & 0xFF

    @property
    def exit_signal(self) -> int | None:
        sig = self.exit_code & 0x7F
        return sig or None


ProcessEvent = ExecEvent | ForkEvent | ExitEvent | ActivityEvent | PreventedEvent
_SIZES = {
    EVENT_EXEC: EXEC_SIZE,
    EVENT_FORK: FORK_SIZE,
    EVENT_EXIT: EXIT_SIZE,
    EVENT_ACTIVITY: ACTIVITY_SIZE,
    EVENT_PREVENTED: PREVENTED_SIZE,
}


def _header(raw: bytes) -> ProcessHeader:
    t, pid, tgid, ppid, uid, gid, cg, start, ts, mnt, pidns, comm = _HEADER.unpack_from(raw)
    return ProcessHeader(pid, tgid, ppid, uid, gid, cg, start, ts, mnt, pidns, _cstr(comm))


def decode_event(raw: bytes) -> ProcessEvent:
    if len(raw) < 4:
        raise EventDecodeError(f"ring-buffer record of {len(raw)} bytes is shorter than an event type")
    (kind,) = struct.unpack_from("<I", raw)
    expected = _SIZES.get(kind)
    if expected is None:
        raise EventDecodeError(f"ring-buffer record has unknown event type {kind}")
    if len(raw) != expected:
        raise EventDecodeError(
            f"event type {kind} record is {len(raw)} bytes, expected {expected}: "
            "the BPF object and events.py disagree (rebuild with scripts/build-bpf)"
        )
    proc = _header(raw)
    if kind == EVENT_FORK:
        return ForkEvent(proc)
    if kind == EVENT_EXIT:
        code, _ = _EXIT_TAIL.unpack_from(raw, _HEADER.size)
        return ExitEvent(proc, code)
    if kind == EVENT_ACTIVITY:
        return _activity(proc, raw)
    if kind == EVENT_PREVENTED:
        return _prevented(proc, raw)
    ino, size, msec, mnsec, dev, argc, argv_len, flags, _, fname, interp, argv, dname = _EXEC_TAIL.unpack_from(
        raw, _HEADER.size
    )
    return ExecEvent(
        proc=proc,
        filename=_cstr(fname),
        interp=_cstr(interp),
        argv=split_argv(argv[: min(argv_len, len(argv))]),
        argv_raw=argv[: min(argv_len, len(argv))],
        argc=argc,
        argv_truncated=bool(flags & EXEC_ARGV_TRUNCATED),
        argv_fault=bool(flags & EXEC_ARGV_FAULT),
        file=FileIdentity(kernel_dev_to_st_dev(dev), ino, size, msec * 1_000_000_000 + mnsec),
        upper_layer=bool(flags & EXEC_UPPER) if flags & EXEC_UPPER_KNOWN else None,
        unlinked=bool(flags & EXEC_UNLINKED),
        dname=_cstr(dname),
    )


def _activity(proc: ProcessHeader, raw: bytes) -> ActivityEvent:
    kind, flags, result, aux, aux2, path, path2, name, ino, exe_ino, dev, exe_dev = _ACTIVITY_TAIL.unpack_from(
        raw, _HEADER.size
    )
    wire_kind = ACTIVITY_KINDS.get(kind)
    if wire_kind is None:
        raise EventDecodeError(f"activity record has unknown kind {kind}")
    return ActivityEvent(
        proc=proc,
        kind=wire_kind,
        result=result,
        aux=aux,
        aux2=aux2,
        path=_cstr(path),
        path2=_cstr(path2),
        name=_cstr(name),
        upper_layer=bool(flags & ACT_UPPER) if flags & ACT_UPPER_KNOWN else None,
        unresolved=bool(flags & ACT_UNRESOLVED),
        truncated=bool(flags & ACT_TRUNCATED),
        ino=ino,
        dev=kernel_dev_to_st_dev(dev),
        exe_ino=exe_ino,
        exe_dev=kernel_dev_to_st_dev(exe_dev),
        by_identity=bool(flags & ACT_IDENTITY),
        workload=bool(flags & ACT_WORKLOAD),
    )


def _prevented(proc: ProcessHeader, raw: bytes) -> PreventedEvent:
    (rule, flags, op, sig, ino, size, msec, mnsec, dev, aux, argv_len, _, fname, interp, dname, argv) = (
        _PREVENTED_TAIL.unpack_from(raw, _HEADER.size)
    )
    operation = None
    if op:
        operation = ACTIVITY_KINDS.get(op)
        if operation is None:
            raise EventDecodeError(f"prevented record has unknown operation {op}")
    return PreventedEvent(
        proc=proc,
        rule_bit=rule,
        enforce=bool(flags & PREVENT_ENFORCE),
        killed=bool(flags & PREVENT_KILLED),
        operation=operation,
        signal_result=sig,
        file=None if op else FileIdentity(kernel_dev_to_st_dev(dev), ino, size, msec * 1_000_000_000 + mnsec),
        aux=aux,
        filename=_cstr(fname),
        interp=_cstr(interp),
        dname=_cstr(dname),
        argv=split_argv(argv[: min(argv_len, len(argv))]),
        upper_layer=bool(flags & PREVENT_UPPER) if flags & PREVENT_UPPER_KNOWN else None,
        unlinked=bool(flags & PREVENT_UNLINKED),
    )


E = TypeVar("E", ExecEvent, ForkEvent, ExitEvent, ActivityEvent, PreventedEvent)


def decode_as(raw: bytes, event_type: type[E]) -> E:
    """``decode_event`` for a record already routed by its type: refused if it is of another."""
    event = decode_event(raw)
    if not isinstance(event, event_type):
        raise EventDecodeError(f"record routed as {event_type.__name__} decodes as {type(event).__name__}")
    return event


# Just what every record needs to be routed: type, tgid, cgroup id, timestamp, mount namespace
# (offsets 0, 8, 24, 40 and 48 of struct event_header), without building any object.
_ROUTE = struct.Struct("<I4xI12xQ8xQI")


def route(raw: bytes) -> tuple[int, int, int, int, int]:
    """(type, tgid, cgroup_id, timestamp_boot_ns, mnt_ns) of a record whose size matches its type.

    The cheap first look at every record; ``decode_event`` then decodes only those
    that are needed in full. Raises EventDecodeError like ``decode_event``.
    """
    if len(raw) >= _ROUTE.size:
        fields = _ROUTE.unpack_from(raw)
        if _SIZES.get(fields[0]) == len(raw):
            return fields
    decode_event(raw)  # raises, naming what is wrong
    raise EventDecodeError(f"ring-buffer record of {len(raw)} bytes could not be routed")


def decode_batch(records: list[bytes]) -> tuple[list[ProcessEvent], list[str]]:
    """Decode a batch; undecodable records are returned as error messages, not dropped silently."""
    events: list[ProcessEvent] = []
    errors: list[str] = []
    for raw in records:
        try:
            events.append(decode_event(raw))
        except EventDecodeError as exc:
            errors.append(str(exc))
    return events, errors
