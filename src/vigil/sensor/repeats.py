"""In-kernel exec aggregation: the first exec of a file in a cgroup is decoded, the rest counted.

After user space has resolved, hashed and recorded an exec, it enters the exec's key
(cgroup, device, inode, mtime, path) into the kernel's ``exec_known`` table: the same
exec again is then only counted there, in the slot of the current epoch. Closing a
batch window moves the kernel to the next epoch and reads the previous one's slots:
counts (taken as differences, the kernel's only grow), first and last seen, added to
the records the first exec created. An interpreter's execs are never entered: what
they run (the script) depends on their argv, which a count does not carry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from vigil.sensor.aggregate import Aggregator, Execution, RecordKey
from vigil.sensor.executables import interpreter_family

# A key whose count has not moved for this many windows is dropped (its container is likely gone).
IDLE_WINDOWS = 120
MAX_KNOWN = 60_000


class RepeatCounter(Protocol):
    def mark_exec_known(self, key: bytes) -> bool: ...
    def next_epoch(self) -> int: ...
    def exec_slot(self, key: bytes, epoch: int) -> tuple[int, int, int, int] | None: ...
    def forget_exec(self, key: bytes) -> None: ...


@dataclass
class _Known:
    records: list[RecordKey]
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

    def __len__(self) -> int:
        return len(self._known)

    def note(self, ex: Execution) -> None:
        if not repeatable(ex) or len(self._known) >= self.max_known:
            return
        key = ex.event.key()
        if key in self._known:
            return  # queued again before the kernel entry took effect
        if self.kernel.mark_exec_known(key):
            self._known[key] = _Known(Aggregator.record_keys(ex))

    def collect(self, aggregator: Aggregator, wall: Callable[[int], datetime]) -> int:
        """Close the kernel's epoch and add its repeat counts to aggregator; returns how many execs."""
        closed = self.kernel.next_epoch()
        slot = closed & 1
        total = 0
        for key, k in list(self._known.items()):
            got = self.kernel.exec_slot(key, closed)
            if got is None:
                del self._known[key]
                continue
            count, first, last, _epoch = got
            delta = count - k.seen[slot]
            k.seen[slot] = count
            if delta <= 0:
                k.idle += 1
                if k.idle >= IDLE_WINDOWS:
                    self.kernel.forget_exec(key)
                    del self._known[key]
                continue
            k.idle = 0
            total += delta
            aggregator.add_repeats(k.records, delta, wall(first or last), wall(last))
        return total
