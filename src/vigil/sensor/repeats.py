"""In-kernel exec aggregation: the first exec of a file in a cgroup is decoded, the rest counted.

After user space has resolved, hashed and recorded an exec, it enters the exec's key
(cgroup, device, inode, mtime, path) into the kernel's ``exec_known`` table: the same
exec again is then only counted there, in the slot of the current epoch. Closing a
batch window moves the kernel to the next epoch and reads the previous one's slots:
counts (taken as differences, the kernel's only grow), first and last seen, added to
the records the first exec created. An interpreter's execs are never entered: what
they run (the script) depends on their argv, which a count does not carry.

File activities repeat the same way per (cgroup, kind, path), and package loads matched by the file's
identity per (cgroup, file identity, executable's identity): an interpreter importing the same module in
a thousand processes costs one queued event per window, the rest are counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from vigil.sensor.activity import PATH_KINDS, Activity, ActivityAggregator
from vigil.sensor.aggregate import Aggregator, Execution, RecordKey
from vigil.sensor.executables import interpreter_family

# A key whose count has not moved for this many windows is dropped (its container is likely gone).
IDLE_WINDOWS = 120
MAX_KNOWN = 60_000


class RepeatCounter(Protocol):
    def mark_known(self, table: str, key: bytes) -> bool: ...
    def next_epoch(self) -> int: ...
    def known_slot(self, table: str, key: bytes, epoch: int) -> tuple[int, int, int, int] | None: ...
    def forget_known(self, table: str, key: bytes) -> None: ...


@dataclass
class _Known:
    records: list[RecordKey] | Activity
    seen: list[int] = field(default_factory=lambda: [0, 0])  # count read last, per slot
    idle: int = 0


def repeatable(ex: Execution) -> bool:
    """Whether repeats of this exec are the same record: no script, no interpreter, a named file."""
    e = ex.event
    return (
        ex.script_path is None
        and not e.unlinked
        and e.interp == e.filename
        and interpreter_family(e.interp, e.argv[0] if e.argv else None) is None
    )


class ExecRepeats:
    def __init__(self, kernel: RepeatCounter, max_known: int = MAX_KNOWN) -> None:
        self.kernel = kernel
        self.max_known = max_known
        self._known: dict[bytes, _Known] = {}
        self._activities: dict[bytes, _Known] = {}
        self._loads: dict[bytes, _Known] = {}

    def __len__(self) -> int:
        return len(self._known) + len(self._activities) + len(self._loads)

    def note_activity(self, a: Activity) -> None:
        """File activities repeat too (a process reading /etc/shadow in a loop): the same
        (cgroup, kind, path) is counted in the kernel once recorded here; a package load the kernel
        matched by identity, per (cgroup, file, executable)."""
        e = a.event
        if e.kind == "package_load" and e.by_identity:
            table, known, key = "load", self._loads, e.load_key()
        elif (e.kind in PATH_KINDS or e.kind == "package_load") and not e.unresolved and not e.truncated:
            table, known, key = "activity", self._activities, e.key()
        else:
            return
        if key not in known and len(known) < self.max_known and self.kernel.mark_known(table, key):
            known[key] = _Known(a)

    def note(self, ex: Execution) -> None:
        if not repeatable(ex) or len(self._known) >= self.max_known:
            return
        key = ex.event.key()
        if key in self._known:
            return  # queued again before the kernel entry took effect
        if self.kernel.mark_known("exec", key):
            self._known[key] = _Known(Aggregator.record_keys(ex))

    def collect(self, aggregator: Aggregator, activities: ActivityAggregator, wall: Callable[[int], datetime]) -> int:
        """Close the kernel's epoch and add its repeat counts to the aggregators; returns how many."""
        closed = self.kernel.next_epoch()
        total = 0
        for table, known in (("exec", self._known), ("activity", self._activities), ("load", self._loads)):
            for key, k in list(known.items()):
                got = self._delta(table, key, k, closed)
                if got is None:
                    del known[key]
                    continue
                delta, first, last = got
                if delta <= 0:
                    continue
                total += delta
                if isinstance(k.records, list):
                    aggregator.add_repeats(k.records, delta, wall(first or last), wall(last))
                else:
                    activities.add_repeats(k.records, delta, wall(first or last), wall(last))
        return total

    def _delta(self, table: str, key: bytes, k: _Known, closed: int) -> tuple[int, int, int] | None:
        """(new count, first, last) of a key's closed slot; None once it is gone or idle too long."""
        got = self.kernel.known_slot(table, key, closed)
        if got is None:
            return None
        count, first, last, _epoch = got
        slot = closed & 1
        delta = count - k.seen[slot]
        k.seen[slot] = count
        if delta > 0:
            k.idle = 0
        else:
            k.idle += 1
            if k.idle >= IDLE_WINDOWS:
                self.kernel.forget_known(table, key)
                return None
        return delta, first, last
