"""Executions -> one record per (container, kind, sha256, path), with counts and samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vigil.sensor.attribution import Attribution
from vigil.sensor.events import ExecEvent
from vigil.sensor.hashing import HashedFile
from vigil.wire.runtime import (
    MAX_ARGV_ITEMS,
    MAX_SAMPLES,
    ExecSample,
    RecordKind,
    RuntimeRecord,
)


@dataclass(frozen=True)
class Execution:
    """An exec event resolved to its container and the files it ran."""

    event: ExecEvent
    attribution: Attribution
    time: datetime
    binary_sha256: str | None
    script_path: str | None = None
    script_sha256: str | None = None
    libraries: list[HashedFile] = field(default_factory=list)

    @property
    def is_script(self) -> bool:
        return self.script_path is not None

    def sample(self) -> ExecSample:
        e = self.event
        return ExecSample(
            time=self.time,
            pid=e.proc.tgid,
            ppid=e.proc.ppid,
            uid=e.proc.uid,
            gid=e.proc.gid,
            comm=e.proc.comm,
            filename=e.filename,
            argv=e.argv[:MAX_ARGV_ITEMS],
            argv_truncated=e.argv_truncated or len(e.argv) > MAX_ARGV_ITEMS,
            interpreter=e.interp if e.interp != e.filename else None,
            cgroup_id=e.proc.cgroup_id,
            mnt_ns=e.proc.mnt_ns,
            pid_ns=e.proc.pid_ns,
            libraries=[lib.path for lib in self.libraries],
            upper_layer=e.upper_layer,
        )


@dataclass
class _Acc:
    first_seen: datetime
    last_seen: datetime
    count: int = 0
    samples: list[ExecSample] = field(default_factory=list)


RecordKey = tuple[str | None, str | None, RecordKind, str | None, str]


class Aggregator:
    """Accumulates executions until ``flush``; a bounded number of distinct records per window."""

    def __init__(self, max_records: int = 50_000, samples_per_record: int = MAX_SAMPLES):
        self._acc: dict[RecordKey, _Acc] = {}
        self.max_records = max_records
        self.samples_per_record = samples_per_record
        self.overflowed = 0  # executions not recorded because the window was full
        self._sample: ExecSample | None = None

    def __len__(self) -> int:
        return len(self._acc)

    def _add(self, key: RecordKey, when: datetime, ex: Execution | None) -> None:
        """Count one execution under key; ``ex`` (None for libraries) gives the sample, built only if kept."""
        acc = self._acc.get(key)
        if acc is None:
            if len(self._acc) >= self.max_records:
                self.overflowed += 1
                return
            acc = self._acc[key] = _Acc(when, when)
        if when < acc.first_seen:
            acc.first_seen = when
        if when > acc.last_seen:
            acc.last_seen = when
        acc.count += 1
        if ex is not None and len(acc.samples) < self.samples_per_record:
            # Built lazily: validating a wire sample costs more than everything else done per exec.
            acc.samples.append(self._sample if self._sample is not None else ex.sample())
            self._sample = acc.samples[-1]

    def add(self, ex: Execution) -> None:
        a = ex.attribution
        cid, pod = a.container_ref, a.pod_uid
        self._sample = None
        # The executable record's path is the file the kernel loaded: for a #!
        # script that is the interpreter, and the script gets its own record.
        self._add((cid, pod, "executable", ex.binary_sha256, ex.event.path), ex.time, ex)
        if ex.script_path is not None:
            self._add((cid, pod, "script", ex.script_sha256, ex.script_path), ex.time, ex)
        for lib in ex.libraries:
            self._add((cid, pod, "library", lib.sha256, lib.path), ex.time, None)

    @staticmethod
    def record_keys(ex: Execution) -> list[RecordKey]:
        """The records one exec counts under (its executable and libraries; not a script's)."""
        cid, pod = ex.attribution.container_ref, ex.attribution.pod_uid
        keys: list[RecordKey] = [(cid, pod, "executable", ex.binary_sha256, ex.event.path)]
        keys.extend((cid, pod, "library", lib.sha256, lib.path) for lib in ex.libraries)
        return keys

    def add_repeats(self, keys: list[RecordKey], count: int, first: datetime, last: datetime) -> None:
        """``count`` more execs the kernel counted without queueing them, between first and last."""
        for key in keys:
            acc = self._acc.get(key)
            if acc is None:
                if len(self._acc) >= self.max_records:
                    self.overflowed += count
                    continue
                acc = self._acc[key] = _Acc(first, last)
            acc.first_seen = min(acc.first_seen, first)
            acc.last_seen = max(acc.last_seen, last)
            acc.count += count

    def take(self) -> dict[RecordKey, _Acc]:
        """Close the window: hand over what was accumulated (cheap; conversion is ``records``)."""
        acc, self._acc = self._acc, {}
        return acc

    def flush(self) -> list[RuntimeRecord]:
        return self.records(self.take())

    @staticmethod
    def records(acc: dict[RecordKey, _Acc]) -> list[RuntimeRecord]:
        return [
            RuntimeRecord(
                container_id=cid,
                pod_uid=pod,
                kind=kind,
                path=path,
                sha256=sha,
                first_seen=v.first_seen,
                last_seen=v.last_seen,
                count=v.count,
                samples=v.samples,
            )
            for (cid, pod, kind, sha, path), v in acc.items()
        ]
