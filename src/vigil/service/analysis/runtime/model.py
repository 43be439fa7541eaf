"""What runtime analysis reads and what it decides (plain data; the runner builds it from the store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

MAX_PARENT_CHAIN = 16  # parents named in a finding's evidence


@dataclass(frozen=True, slots=True)
class Sample:
    """One exec the sensor kept in full (the first few per record per window)."""

    time: datetime | None
    pid: int
    ppid: int
    uid: int
    comm: str
    filename: str
    argv: tuple[str, ...]
    interpreter: str | None = None
    # The exec'd file lives on the container's overlay upper layer (written after it started); None: unknown.
    upper_layer: bool | None = None

    @property
    def name(self) -> str:
        """What a person calls the process: its command name, else the executed file's name."""
        return self.comm or self.filename.rsplit("/", 1)[-1] or str(self.pid)

    @classmethod
    def from_wire(cls, d: Mapping) -> Sample:
        t = d.get("time")
        when = datetime.fromisoformat(t) if isinstance(t, str) else t
        return cls(
            time=when,
            pid=int(d.get("pid", 0)),
            ppid=int(d.get("ppid", 0)),
            uid=int(d.get("uid", 0)),
            comm=str(d.get("comm", "")),
            filename=str(d.get("filename", "")),
            argv=tuple(d.get("argv") or ()),
            interpreter=d.get("interpreter"),
            upper_layer=d.get("upper_layer"),
        )

    def as_evidence(self) -> dict:
        return {
            "time": self.time.isoformat() if self.time else None,
            "pid": self.pid,
            "ppid": self.ppid,
            "uid": self.uid,
            "comm": self.comm,
            "filename": self.filename,
            "argv": list(self.argv),
            "interpreter": self.interpreter,
            "upper_layer": self.upper_layer,
        }


@dataclass(frozen=True, slots=True)
class ExecRecord:
    """One runtime record: a file at a path that ran (or was mapped) in one container."""

    id: int
    cluster_id: str
    node_name: str
    container_id: str
    pod_uid: str | None
    kind: str  # executable | script | library
    path: str
    sha256: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    count: int
    samples: tuple[Sample, ...] = ()

    def first_sample(self) -> Sample | None:
        return self.samples[0] if self.samples else None


@dataclass(frozen=True, slots=True)
class ActivitySample:
    """One file access or kernel operation the sensor kept in full."""

    time: datetime | None
    pid: int
    ppid: int
    uid: int
    comm: str
    exe: str
    argv: tuple[str, ...]
    parents: tuple[str, ...] = ()  # the parent chain's command names, nearest first (from the kernel)
    result: int = 0

    @classmethod
    def from_wire(cls, d: Mapping) -> ActivitySample:
        t = d.get("time")
        return cls(
            time=datetime.fromisoformat(t) if isinstance(t, str) else t,
            pid=int(d.get("pid", 0)),
            ppid=int(d.get("ppid", 0)),
            uid=int(d.get("uid", 0)),
            comm=str(d.get("comm", "")),
            exe=str(d.get("exe", "")),
            argv=tuple(d.get("argv") or ()),
            parents=tuple(d.get("parents") or ()),
            result=int(d.get("result", 0)),
        )

    def as_evidence(self) -> dict:
        return {
            "time": self.time.isoformat() if self.time else None,
            "pid": self.pid,
            "ppid": self.ppid,
            "uid": self.uid,
            "comm": self.comm,
            "exe": self.exe,
            "argv": list(self.argv),
            "parents": list(self.parents),
            "result": self.result,
        }


@dataclass(frozen=True, slots=True)
class Activity:
    """One stored activity: what one container did of one kind (file_write, ptrace, ...) to one target."""

    id: int
    cluster_id: str
    node_name: str
    container_id: str
    pod_uid: str | None
    kind: str
    target: str
    upper_layer: bool | None
    detail: Mapping[str, str]
    first_seen: datetime | None
    last_seen: datetime | None
    count: int
    samples: tuple[ActivitySample, ...] = ()

    def first_sample(self) -> ActivitySample | None:
        return self.samples[0] if self.samples else None


@dataclass(frozen=True, slots=True)
class Workload:
    """Where a container runs: the identity findings are keyed by, and what allow-lists match."""

    cluster_id: str
    cluster_name: str
    namespace: str
    kind: str
    name: str
    pod_name: str
    container_name: str
    image_pk: int
    image_ref: str
    digest: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def key(self) -> str:
        return f"{self.cluster_id}|{self.namespace}|{self.kind}|{self.name}|{self.image_pk}"


@dataclass(frozen=True, slots=True)
class ContainerProcesses:
    """What the service knows of a container's processes, from every sample it holds.

    ``init_pid``: the pid of the earliest exec seen in the container (its entry point);
    ``pids``: every pid seen executing in it. A process whose parent is neither is a
    process the container runtime started from outside: an exec session.
    """

    init_pid: int | None
    pids: frozenset[int]
    # pid -> the newest exec seen with it: what the process became, to name a child's parents
    execs: Mapping[int, Sample] = field(default_factory=dict)

    @classmethod
    def from_samples(cls, samples: list[Sample]) -> ContainerProcesses:
        timed = [s for s in samples if s.time is not None]
        init = min(timed, key=lambda s: (s.time, s.pid)).pid if timed else None
        execs: dict[int, Sample] = {}
        for s in sorted(samples, key=lambda s: (s.time is not None, s.time or datetime.min)):
            execs[s.pid] = s
        return cls(init, frozenset(s.pid for s in samples), execs)

    def parent_chain(self, s: Sample, limit: int = MAX_PARENT_CHAIN) -> list[dict]:
        """The exec's parents, nearest first, each by the name of what it executed (``name`` None for a
        parent no sample shows: one started outside what the sensor saw, such as the runtime's shim)."""
        chain: list[dict] = []
        seen = {s.pid}
        ppid = s.ppid
        while ppid and ppid not in seen and len(chain) < limit:
            seen.add(ppid)
            parent = self.execs.get(ppid)
            if parent is None:
                chain.append({"pid": ppid, "name": None})
                break
            chain.append({"pid": ppid, "name": parent.name})
            ppid = parent.ppid
        return chain

    def entered_from_outside(self, s: Sample) -> bool:
        return s.pid != self.init_pid and s.ppid not in self.pids

    def in_entry_point_family(self, pid: int, ppid: int) -> bool | None:
        """Whether the process is the container's entry point or descends from it (through the execs
        seen); None when no exec of the container was seen, so its entry point is not known."""
        if self.init_pid is None:
            return None
        if pid == self.init_pid:
            return True
        seen = {pid}
        while ppid and ppid not in seen:
            if ppid == self.init_pid:
                return True
            seen.add(ppid)
            parent = self.execs.get(ppid)
            if parent is None:
                return False
            ppid = parent.ppid
        return False


@dataclass(frozen=True, slots=True)
class PackageRef:
    id: int
    type: str
    name: str
    version: str
    purl: str
    found_in: str = ""  # where the catalog found it (a nested jar's path inside its archive, vigil...runtime.jars)


@dataclass(frozen=True, slots=True)
class VulnerabilityRef:
    """A vulnerability of one package of the image (from image_vulnerabilities)."""

    package_id: int
    vuln_id: str
    key_id: str
    advisory_ids: tuple[str, ...]
    aliases: tuple[str, ...]
    severity: str
    score: float | None
    fixed_versions: tuple[str, ...]
    malicious: bool
    summary: str
    links: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Detection:
    """One finding to open or refresh, before it is tied to a workload."""

    type: str
    severity: str
    subject: str
    key: str  # the subject part of the dedup key
    evidence: dict
