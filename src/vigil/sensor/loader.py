"""Load the sensor's BPF object with libbpf (through ctypes) and drain its ring buffer.

Only libbpf.so.1 (Debian ``libbpf1``) is needed at run time. The ring buffer is
drained in batches: ``poll`` waits until the kernel side wakes us (it does so
only past a byte threshold) or the timeout passes, then hands back every record
that arrived, as raw bytes, for decoding in one go.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from vigil.sensor.activity import RUNTIME_INIT_COMMS
from vigil.sensor.watch import PATH_LEN, WatchEntry, watch_entries

log = logging.getLogger(__name__)

BPF_OBJECT = Path(__file__).resolve().parent / "bpf" / "vigil.bpf.o"
PROGRAMS = ("vigil_exec", "vigil_fork", "vigil_exit")
# Syscalls traced for file access and kernel operations, each by a vigil_enter_<name> and a
# vigil_exit_<name> program. Optional: one whose tracepoints this kernel lacks (init_module
# and finit_module on some) is left out and named in the start log.
ACTIVITY_SYSCALLS = (
    "openat",
    "openat2",
    "open",
    "creat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "ptrace",
    "setns",
    "unshare",
    "mount",
    "pivot_root",
    "memfd_create",
    "bpf",
    "init_module",
    "finit_module",
)
BTF_PATH = Path("/sys/kernel/btf/vmlinux")
TRACEFS = Path("/sys/kernel/tracing")

# Index of each counter in the per-CPU "counters" map (enum counter in vigil.bpf.c).
COUNTERS = {
    "exec": 0,
    "fork": 1,
    "exit": 2,
    "filtered": 3,
    "lost": 4,
    "argv_fault": 5,
    "activity": 6,
    "exec_aggregated": 7,
    "path_filtered": 8,
    "activity_aggregated": 9,
    "prevented": 10,
    "audited": 11,
    "load_aggregated": 12,
}

# struct exec_count: two struct exec_slot {count, first_boot_ns, last_boot_ns, epoch}.
_EXEC_COUNT = struct.Struct("<8Q")

# Capability numbers from linux/capability.h.
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def _host_mnt_ns(proc: Path = Path("/proc")) -> int:
    """The host's mount namespace: pid 1's (the sensor runs in the host's PID namespace), else, when
    that is unreadable (a sandboxed pid 1), this process's own; 0 when neither can be read."""
    for who in ("1", "self"):
        try:
            return os.stat(proc / who / "ns" / "mnt").st_ino & 0xFFFFFFFF
        except OSError:
            continue
    return 0


def running_workloads(host_mnt_ns: int, proc: Path = Path("/proc")) -> list[tuple[int, int]]:
    """The processes already running in a mount namespace not the host's, as (tgid, start time in
    clock ticks), for the kernel's workload_tasks: it enters the ones that start later itself. A
    process named as runc's init stages is left out: that name is all this can know of it."""
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    out = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "mnt").st_ino & 0xFFFFFFFF == host_mnt_ns:
                continue
            # comm may hold spaces and parentheses: the fields after it follow the last ')'.
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue  # gone, or a kernel thread without a mount namespace to read
        comm = stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode("utf-8", "replace")
        fields = stat[stat.rfind(b")") + 2 :].split()
        if comm.startswith(RUNTIME_INIT_COMMS) or len(fields) < 20:
            continue
        # the kernel's ticks are in 1/100 s (USER_HZ 100); scaled in case this build reports other
        out.append((int(entry.name), int(fields[19]) * 100 // ticks_per_second))
    return out


class SensorLoadError(RuntimeError):
    """The BPF object could not be loaded or attached; the message names what is missing."""


def effective_capabilities(status_text: str) -> int:
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise ValueError("no CapEff line in /proc/self/status")


def missing_capabilities(cap_eff: int) -> list[str]:
    """What this process lacks to load tracing BPF programs (empty when nothing)."""

    def has(cap: int) -> bool:
        return bool(cap_eff >> cap & 1)

    if has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON)):
        return []
    return [name for cap, name in ((CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")) if not has(cap)]


def preflight(btf_path: Path = BTF_PATH, status_path: Path = Path("/proc/self/status")) -> None:
    """Raise SensorLoadError naming the first missing prerequisite."""
    if not btf_path.exists():
        raise SensorLoadError(
            f"kernel BTF not found at {btf_path}: the kernel must be built with CONFIG_DEBUG_INFO_BTF=y "
            "for the CO-RE sensor to load"
        )
    missing = missing_capabilities(effective_capabilities(status_path.read_text()))
    if missing:
        raise SensorLoadError(
            f"missing capabilities {', '.join(missing)} (or CAP_SYS_ADMIN): the sensor cannot load BPF programs"
        )


def ensure_tracefs(path: Path = TRACEFS) -> None:
    """Mount tracefs where classic tp/ programs need it (tp_btf programs do not)."""
    if (path / "events").is_dir():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tracefs", str(path).encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise SensorLoadError(f"tracefs is not mounted at {path} and mounting it failed: {os.strerror(err)}")
    log.info("mounted tracefs at %s", path)


_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def _libbpf() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SensorLoadError(f"libbpf not found ({exc}): apt-get install libbpf1") from exc
    vp, cp, i, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t
    for fn, res, args in (
        ("bpf_object__open_file", vp, [cp, vp]),
        ("bpf_object__load", i, [vp]),
        ("bpf_object__close", None, [vp]),
        ("bpf_object__find_program_by_name", vp, [vp, cp]),
        ("bpf_object__find_map_by_name", vp, [vp, cp]),
        ("bpf_program__attach", vp, [vp]),
        ("bpf_program__section_name", cp, [vp]),
        ("bpf_link__destroy", i, [vp]),
        ("bpf_map__fd", i, [vp]),
        ("bpf_map__update_elem", i, [vp, vp, sz, vp, sz, ctypes.c_uint64]),
        ("bpf_map__lookup_elem", i, [vp, vp, sz, vp, sz, ctypes.c_uint64]),
        ("bpf_map__delete_elem", i, [vp, vp, sz, ctypes.c_uint64]),
        ("ring_buffer__new", vp, [i, _SAMPLE_FN, vp, vp]),
        ("ring_buffer__poll", i, [vp, i]),
        ("ring_buffer__consume", i, [vp]),
        ("ring_buffer__free", None, [vp]),
        ("libbpf_num_possible_cpus", i, []),
        ("libbpf_set_print", vp, [_PRINT_FN]),
    ):
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    return lib


_libc = ctypes.CDLL(None)
_libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]


@dataclass
class _Log:
    """libbpf's warnings, kept so a load failure can quote the reason."""

    lines: list[str]

    def __call__(self, level: int, fmt: bytes, args: int) -> int:
        buf = ctypes.create_string_buffer(2048)
        _libc.vsnprintf(buf, len(buf), fmt, args)
        text = buf.value.decode(errors="replace").rstrip()
        if level <= 1:  # LIBBPF_WARN, LIBBPF_INFO
            self.lines.append(text)
            if len(self.lines) > 200:
                del self.lines[:100]
        return 0


class ProcessTracer:
    """The loaded and attached BPF programs, their maps and the ring buffer.

    Use as a context manager; ``close`` detaches everything.
    """

    def __init__(
        self,
        obj_path: Path = BPF_OBJECT,
        *,
        include_host: bool = False,
        wakeup_bytes: int = 64 * 1024,
        exec_only: bool = False,
        activities: bool = True,
        exec_aggregation: bool = True,
        watch: list[WatchEntry] | None = None,
    ) -> None:
        preflight()
        if not obj_path.is_file():
            raise SensorLoadError(f"BPF object {obj_path} not found: run scripts/build-bpf")
        self._lib = _libbpf()
        self._log = _Log([])
        self._print_cb = _PRINT_FN(self._log)
        self._lib.libbpf_set_print(self._print_cb)
        # libbpf's pointers (an int from ctypes; None before open and after close)
        self._obj: int | None = None
        self._links: list[int] = []
        self._rb: int | None = None
        self._batch: list[bytes] = []
        self._sample_cb = _SAMPLE_FN(self._on_sample)
        self.activities = activities
        self.exec_aggregation = exec_aggregation
        self.epoch = 2  # the exec_known slots start at epoch 0: the first epoch must differ
        self._config_values: tuple[int, int, int] = (0, 0, 0)
        self.host_mnt_ns = _host_mnt_ns()
        self.missing_syscalls: list[str] = []  # traced syscalls this kernel has no tracepoints for
        try:
            self._open_and_attach(obj_path)
            self.enter_workloads(running_workloads(self.host_mnt_ns))
            self.configure(include_host=include_host, wakeup_bytes=wakeup_bytes, exec_only=exec_only)
            if activities:
                self.set_watch(watch_entries() if watch is None else watch)
        except BaseException:
            self.close()
            raise

    def _fail(self, what: str, err: int) -> SensorLoadError:
        hint = ""
        if err in (errno.EPERM, errno.EACCES):
            hint = " (missing CAP_BPF/CAP_PERFMON or CAP_SYS_ADMIN?)"
        detail = "; ".join(self._log.lines[-5:])
        return SensorLoadError(f"{what}: {os.strerror(err)}{hint}" + (f"; libbpf: {detail}" if detail else ""))

    def _open_and_attach(self, obj_path: Path) -> None:
        lib = self._lib
        self._obj = lib.bpf_object__open_file(str(obj_path).encode(), None)
        if not self._obj:
            raise self._fail(f"cannot open BPF object {obj_path}", ctypes.get_errno())
        sections = []
        for name in PROGRAMS:
            prog = lib.bpf_object__find_program_by_name(self._obj, name.encode())
            if not prog:
                raise SensorLoadError(f"BPF object {obj_path} has no program {name}: rebuild it with scripts/build-bpf")
            sections.append(lib.bpf_program__section_name(prog).decode())
        if self.activities or any(s.startswith(("tp/", "tracepoint/")) for s in sections):
            ensure_tracefs()
        rc = lib.bpf_object__load(self._obj)
        if rc:
            raise self._fail(f"cannot load BPF object {obj_path}", -rc)
        for name in PROGRAMS:
            self._attach(name)
        if self.activities:
            self._attach_syscalls()
        self._events = self._map("events")
        self._counters = self._map("counters")
        self._config = self._map("config")
        self._host_cgroups = self._map("host_cgroups")
        self._watch = self._map("watch_paths")
        self._exec_known = self._map("exec_known")
        self._activity_known = self._map("activity_known")
        self._prevent_cgroups = self._map("prevent_cgroups")
        self._deny_files = self._map("deny_files")
        self._drift_files = self._map("drift_files")
        self._load_files = self._map("load_files")
        self._load_known = self._map("load_known")
        self._workload_tasks = self._map("workload_tasks")
        self._rb = lib.ring_buffer__new(lib.bpf_map__fd(self._events), self._sample_cb, None, None)
        if not self._rb:
            raise self._fail("cannot create ring buffer reader", ctypes.get_errno())
        self._ncpus = lib.libbpf_num_possible_cpus()

    def _attach(self, name: str) -> None:
        prog = self._lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if not prog:
            raise SensorLoadError(f"BPF object has no program {name}: rebuild it with scripts/build-bpf")
        link = self._lib.bpf_program__attach(prog)
        if not link:
            raise self._fail(f"cannot attach BPF program {name}", ctypes.get_errno())
        self._links.append(link)

    def _attach_syscalls(self) -> None:
        events = TRACEFS / "events" / "syscalls"
        for call in ACTIVITY_SYSCALLS:
            if not (events / f"sys_enter_{call}").is_dir() or not (events / f"sys_exit_{call}").is_dir():
                self.missing_syscalls.append(call)
                continue
            # Exit first: an entry recorded with no exit program attached would stay pending.
            self._attach(f"vigil_exit_{call}")
            self._attach(f"vigil_enter_{call}")
        if self.missing_syscalls:
            log.info(
                "this kernel has no syscall tracepoints for %s: not traced",
                ", ".join(self.missing_syscalls),
            )

    def _map(self, name: str) -> int:
        m: int | None = self._lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if not m:
            raise SensorLoadError(f"BPF object has no map {name}: rebuild it with scripts/build-bpf")
        return m

    def _on_sample(self, _ctx: int, data: int, size: int) -> int:
        self._batch.append(ctypes.string_at(data, size))
        return 0

    def configure(self, *, include_host: bool, wakeup_bytes: int, exec_only: bool = False) -> None:
        """``exec_only``: forks and exits are counted in the kernel but not queued (a shipping
        sensor uses only execs; three records per process become one)."""
        self._config_values = (int(include_host), wakeup_bytes, int(exec_only))
        self._write_config()

    def _write_config(self) -> None:
        key = ctypes.c_uint32(0)
        packed = struct.pack(
            "<8I",
            *self._config_values,
            int(self.activities),
            int(self.exec_aggregation),
            self.epoch,
            self.host_mnt_ns,
            0,
        )
        value = ctypes.create_string_buffer(packed, len(packed))
        rc = self._lib.bpf_map__update_elem(self._config, ctypes.byref(key), 4, value, len(packed), 0)
        if rc:
            raise self._fail("cannot write the sensor config map", -rc)

    def set_watch(self, entries: list[WatchEntry]) -> None:
        """Fill the kernel's watched-path table (struct watch_key / watch_value)."""
        for e in entries:
            raw = e.path.encode()
            key = ctypes.create_string_buffer(
                struct.pack("<I", len(raw) * 8) + raw.ljust(PATH_LEN, b"\0"), 4 + PATH_LEN
            )
            value = ctypes.create_string_buffer(struct.pack("<4I", e.prefix_flags, e.exact_flags, len(raw), 0), 16)
            rc = self._lib.bpf_map__update_elem(self._watch, key, 4 + PATH_LEN, value, 16, 0)
            if rc:
                raise self._fail(f"cannot add watched path {e.path}", -rc)

    def delete_watch(self, path: str) -> None:
        """Take one path out of the kernel's watched-path table (absent already: nothing to do)."""
        raw = path.encode()
        key = ctypes.create_string_buffer(struct.pack("<I", len(raw) * 8) + raw.ljust(PATH_LEN, b"\0"), 4 + PATH_LEN)
        rc = self._lib.bpf_map__delete_elem(self._watch, key, 4 + PATH_LEN, 0)
        if rc and -rc != errno.ENOENT:
            raise self._fail(f"cannot remove watched path {path}", -rc)

    def watch_value(self, path: str) -> tuple[int, int, str] | None:
        """(prefix flags, exact flags, entry path) of the table's longest entry matching ``path``, as the kernel
        finds it; None when no entry does."""
        raw = path.encode()
        key = ctypes.create_string_buffer(struct.pack("<I", len(raw) * 8) + raw.ljust(PATH_LEN, b"\0"), 4 + PATH_LEN)
        out = ctypes.create_string_buffer(16)
        if self._lib.bpf_map__lookup_elem(self._watch, key, 4 + PATH_LEN, out, 16, 0):
            return None
        prefix, exact, length, _ = struct.unpack("<4I", out.raw)
        return prefix, exact, raw[:length].decode()

    def _known_map(self, table: str) -> int:
        return {"exec": self._exec_known, "activity": self._activity_known, "load": self._load_known}[table]

    def mark_known(self, table: str, key: bytes) -> bool:
        """Count this exec's (table "exec", struct exec_key), file activity's ("activity", struct
        activity_key) or package load's ("load", struct load_seen) repeats in the kernel from now on; False
        if the map is full."""
        buf = ctypes.create_string_buffer(key, len(key))
        zero = ctypes.create_string_buffer(_EXEC_COUNT.size)
        rc: int = self._lib.bpf_map__update_elem(self._known_map(table), buf, len(key), zero, _EXEC_COUNT.size, 1)
        return rc == 0  # 1: BPF_NOEXIST

    def next_epoch(self) -> int:
        """Move repeat counting to the other slot; returns the epoch just closed, whose slot is now still."""
        closed = self.epoch
        self.epoch += 1
        self._write_config()
        return closed

    def known_slot(self, table: str, key: bytes, epoch: int) -> tuple[int, int, int, int] | None:
        """(count, first, last boot ns, epoch) of a known key's slot for epoch; None when not in the map."""
        buf = ctypes.create_string_buffer(key, len(key))
        out = ctypes.create_string_buffer(_EXEC_COUNT.size)
        if self._lib.bpf_map__lookup_elem(self._known_map(table), buf, len(key), out, _EXEC_COUNT.size, 0):
            return None
        slots = _EXEC_COUNT.unpack(out.raw)
        i = (epoch & 1) * 4
        count, first, last, slot_epoch = slots[i : i + 4]
        return count, first, last, slot_epoch

    def forget_known(self, table: str, key: bytes) -> None:
        buf = ctypes.create_string_buffer(key, len(key))
        self._lib.bpf_map__delete_elem(self._known_map(table), buf, len(key), 0)

    def set_cgroup_rules(self, cgroup_id: int, enforce: int, audit: int) -> None:
        """Put a cgroup's processes under the prevention rules (struct prevent_bits) from now on."""
        key = ctypes.c_uint64(cgroup_id)
        value = ctypes.create_string_buffer(struct.pack("<2I", enforce, audit), 8)
        rc = self._lib.bpf_map__update_elem(self._prevent_cgroups, ctypes.byref(key), 8, value, 8, 0)
        if rc:
            raise self._fail(f"cannot set the prevention rules of cgroup {cgroup_id}", -rc)

    def cgroup_rules(self, cgroup_id: int) -> tuple[int, int] | None:
        """(enforce, audit) bits the kernel holds for a cgroup; None when it is under no rule."""
        key = ctypes.c_uint64(cgroup_id)
        out = ctypes.create_string_buffer(8)
        if self._lib.bpf_map__lookup_elem(self._prevent_cgroups, ctypes.byref(key), 8, out, 8, 0):
            return None
        enforce, audit = struct.unpack("<2I", out.raw)
        return enforce, audit

    def clear_cgroup_rules(self, cgroup_id: int) -> None:
        key = ctypes.c_uint64(cgroup_id)
        self._lib.bpf_map__delete_elem(self._prevent_cgroups, ctypes.byref(key), 8, 0)

    def deny_file(self, key: bytes) -> None:
        """Kill (or audit) execs of this file identity (struct file_id) where deny_listed applies."""
        buf = ctypes.create_string_buffer(key, len(key))
        one = ctypes.c_uint8(1)
        rc = self._lib.bpf_map__update_elem(self._deny_files, buf, len(key), ctypes.byref(one), 1, 0)
        if rc:
            raise self._fail("cannot add a file to the in-kernel deny list", -rc)

    def allow_file(self, key: bytes) -> None:
        buf = ctypes.create_string_buffer(key, len(key))
        self._lib.bpf_map__delete_elem(self._deny_files, buf, len(key), 0)

    def drift_file(self, key: bytes) -> None:
        """Judge execs of this file identity in this cgroup (struct drift_key) under the cgroup's drift rule."""
        buf = ctypes.create_string_buffer(key, len(key))
        one = ctypes.c_uint8(1)
        rc = self._lib.bpf_map__update_elem(self._drift_files, buf, len(key), ctypes.byref(one), 1, 0)
        if rc:
            raise self._fail("cannot add a file to the in-kernel drift map", -rc)

    def undrift_file(self, key: bytes) -> None:
        buf = ctypes.create_string_buffer(key, len(key))
        self._lib.bpf_map__delete_elem(self._drift_files, buf, len(key), 0)

    def is_drift_file(self, key: bytes) -> bool:
        """Whether the kernel holds this struct drift_key (a file identity in one cgroup)."""
        buf = ctypes.create_string_buffer(key, len(key))
        out = ctypes.create_string_buffer(1)
        return not self._lib.bpf_map__lookup_elem(self._drift_files, buf, len(key), out, 1, 0)

    def set_load_file(self, key: bytes) -> None:
        """Report opens of this file identity in this cgroup (struct load_key) as package loads."""
        buf = ctypes.create_string_buffer(key, len(key))
        one = ctypes.c_uint8(1)
        rc = self._lib.bpf_map__update_elem(self._load_files, buf, len(key), ctypes.byref(one), 1, 0)
        if rc:
            raise self._fail("cannot add a package file to the in-kernel load map", -rc)

    def clear_load_file(self, key: bytes) -> None:
        buf = ctypes.create_string_buffer(key, len(key))
        self._lib.bpf_map__delete_elem(self._load_files, buf, len(key), 0)

    def is_load_file(self, key: bytes) -> bool:
        """Whether the kernel holds this struct load_key (a package file identity in one cgroup)."""
        buf = ctypes.create_string_buffer(key, len(key))
        out = ctypes.create_string_buffer(1)
        return not self._lib.bpf_map__lookup_elem(self._load_files, buf, len(key), out, 1, 0)

    def enter_workloads(self, processes: list[tuple[int, int]]) -> None:
        """Enter (tgid, start ticks) processes in the kernel's workload_tasks: their runc:[ names, if
        they take one, do not spare them."""
        for tgid, ticks in processes:
            key = ctypes.c_uint32(tgid)
            value = ctypes.c_uint64(ticks)
            rc = self._lib.bpf_map__update_elem(self._workload_tasks, ctypes.byref(key), 4, ctypes.byref(value), 8, 0)
            if rc:
                log.warning("cannot enter process %d in the kernel's workload table: %s", tgid, os.strerror(-rc))
                return

    def skip_cgroup(self, cgroup_id: int) -> None:
        """Drop events of this cgroup in the kernel from now on (host processes)."""
        key = ctypes.c_uint64(cgroup_id)
        one = ctypes.c_uint8(1)
        rc = self._lib.bpf_map__update_elem(self._host_cgroups, ctypes.byref(key), 8, ctypes.byref(one), 1, 0)
        if rc:
            log.warning("cannot add cgroup %d to the in-kernel host filter: %s", cgroup_id, os.strerror(-rc))

    def poll(self, timeout_ms: int = 200) -> list[bytes]:
        """Wait up to timeout_ms for a wake-up, then return every record available (maybe none)."""
        rc = self._lib.ring_buffer__poll(self._rb, timeout_ms)
        if rc < 0 and rc != -errno.EINTR:
            raise self._fail("ring buffer poll failed", -rc)
        return self.drain()

    def drain(self) -> list[bytes]:
        """Return every record already in the ring buffer without waiting."""
        self._lib.ring_buffer__consume(self._rb)
        batch, self._batch = self._batch, []
        return batch

    def counters(self) -> dict[str, int]:
        """In-kernel counters summed over CPUs."""
        out = {}
        buf = (ctypes.c_uint64 * self._ncpus)()
        for name, idx in COUNTERS.items():
            key = ctypes.c_uint32(idx)
            rc = self._lib.bpf_map__lookup_elem(self._counters, ctypes.byref(key), 4, buf, ctypes.sizeof(buf), 0)
            if rc:
                raise self._fail(f"cannot read counter {name}", -rc)
            out[name] = sum(buf)
        return out

    def close(self) -> None:
        if self._rb:
            self._lib.ring_buffer__free(self._rb)
            self._rb = None
        for link in self._links:
            self._lib.bpf_link__destroy(link)
        self._links = []
        if self._obj:
            self._lib.bpf_object__close(self._obj)
            self._obj = None

    def __enter__(self) -> ProcessTracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
