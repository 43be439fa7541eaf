"""Runtime batches: what a sensor sends the service (POST /api/v1/ingest/runtime).

One schema, used by the sensor to build batches and by the service to
validate them. A batch holds aggregated records: one per (container, kind,
file sha256, path) seen on a node during the batch's window, with first/last
seen, a count, and the first few full exec events as samples. Besides execs,
a batch carries activities: file accesses on watched paths and kernel
operations (namespaces, mounts, ptrace, bpf, modules, memfd), aggregated the
same way per (container, kind, target), and preventions: what the kernel killed
(or, in audit mode, would have killed) under the node's runtime policy
(vigil.wire.prevention). Every batch carries an id chosen by
the sender so that a retried batch is applied once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vigil.wire.base import DNS_SUBDOMAIN, INT64_MAX, Batch, WireModel, check, check_container_id, require_unique
from vigil.wire.prevention import MAX_PREVENTIONS, PreventionRecord

RUNTIME_INGEST_PATH = "/api/v1/ingest/runtime"
SENSOR_HEARTBEAT_PATH = "/api/v1/ingest/sensor-heartbeat"

MAX_RECORDS = 50_000
MAX_SAMPLES = 5
MAX_ARGV_ITEMS = 256
MAX_PATH = 4096

_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
_POD_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")

RecordKind = Literal["executable", "script", "library"]

ActivityKind = Literal[
    "file_write",  # open for write/create/trunc that succeeded, on a write-watched path
    "file_read",  # open for read that succeeded, on a read-watched path
    "file_rename",  # rename onto a watched path (target = new path; detail.source = old path)
    "file_chmod",  # chmod family adding an exec bit under a watched path (detail.mode = octal)
    "file_unlink",  # unlink of a watched path
    "ptrace",  # PTRACE_ATTACH/SEIZE of another process (target = "pid:<host pid> comm:<comm>")
    "setns",  # detail.flags = CLONE_NEW* names joined by "|"
    "unshare",  # detail.flags = CLONE_NEW* names joined by "|"
    "mount",  # target = mount point; detail.source, detail.fstype
    "pivot_root",
    "bpf_load",  # bpf(BPF_PROG_LOAD); detail.prog_type
    "module_load",  # init_module/finit_module where the kernel has the tracepoints
    "memfd_create",  # detail.name
    "package_load",  # open for read of a file in the node policy's load watch of that container
]

MAX_DETAIL_ENTRIES = 16
MAX_DETAIL_VALUE = 1024
MAX_PARENTS = 8


def _sha(v: str | None) -> str | None:
    if v is not None and not _SHA256_HEX.match(v):
        raise ValueError(f"{v!r} is not a file sha256 (64 lowercase hex)")
    return v


def _pod_uid(v: str | None) -> str | None:
    if v is not None:
        check(_POD_UID, v, "pod uid (lowercase UUID)")
    return v


class ExecSample(WireModel):
    """One exec as the kernel reported it."""

    time: datetime
    pid: int = Field(ge=1, le=INT64_MAX)
    ppid: int = Field(ge=0, le=INT64_MAX)
    uid: int = Field(ge=0, le=INT64_MAX)
    gid: int = Field(ge=0, le=INT64_MAX)
    comm: str = Field(default="", max_length=16)
    filename: str = Field(max_length=MAX_PATH, description="The path given to execve")
    argv: list[str] = Field(default_factory=list, max_length=MAX_ARGV_ITEMS)
    argv_truncated: bool = False
    interpreter: str | None = Field(
        default=None, max_length=MAX_PATH, description="For #! scripts: the interpreter loaded"
    )
    cgroup_id: int = Field(default=0, ge=0, le=INT64_MAX)
    mnt_ns: int = Field(default=0, ge=0, le=INT64_MAX)
    pid_ns: int = Field(default=0, ge=0, le=INT64_MAX)
    libraries: list[str] = Field(
        default_factory=list, max_length=512, description="Paths of shared libraries mapped shortly after exec"
    )
    upper_layer: bool | None = Field(
        default=None,
        description="The exec'd file lives on the container's overlay upper layer (written after it started); "
        "null when not known",
    )


class RuntimeRecord(WireModel):
    """What ran (or was loaded) in one container: one file at one path, aggregated."""

    container_id: str | None = Field(description="Runtime-prefixed id (containerd://<id>); null for host processes")
    pod_uid: str | None = None
    kind: RecordKind = "executable"
    path: str = Field(min_length=1, max_length=MAX_PATH)
    sha256: str | None = Field(description="sha256 of the file's bytes; null when the file could not be read")
    first_seen: datetime
    last_seen: datetime
    count: int = Field(ge=1, le=INT64_MAX)
    samples: list[ExecSample] = Field(default_factory=list, max_length=MAX_SAMPLES)

    @field_validator("container_id")
    @classmethod
    def _cid(cls, v: str | None) -> str | None:
        return check_container_id(v)

    @field_validator("pod_uid")
    @classmethod
    def _pod(cls, v: str | None) -> str | None:
        return _pod_uid(v)

    @field_validator("sha256")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        return _sha(v)

    @model_validator(mode="after")
    def _order(self) -> RuntimeRecord:
        if self.last_seen < self.first_seen:
            raise ValueError(f"record {self.path}: last_seen {self.last_seen} is before first_seen {self.first_seen}")
        return self

    @property
    def key(self) -> tuple[str | None, str, str | None, str]:
        return (self.container_id, self.kind, self.sha256, self.path)


class ActivitySample(WireModel):
    """One file access or kernel operation as the kernel reported it."""

    time: datetime
    pid: int = Field(ge=1, le=INT64_MAX)
    ppid: int = Field(ge=0, le=INT64_MAX)
    uid: int = Field(ge=0, le=INT64_MAX)
    comm: str = Field(default="", max_length=16)
    exe: str = Field(default="", max_length=MAX_PATH, description="The process's executable path")
    argv: list[str] = Field(default_factory=list, max_length=MAX_ARGV_ITEMS)
    parents: list[str] = Field(
        default_factory=list, max_length=MAX_PARENTS, description="comm of the parent chain, nearest first"
    )
    result: int = Field(
        default=0, ge=-INT64_MAX, le=INT64_MAX, description="The syscall's return value (negative errno)"
    )

    @field_validator("parents")
    @classmethod
    def _parents(cls, v: list[str]) -> list[str]:
        for name in v:
            if len(name) > 16:
                raise ValueError(f"parent name {name[:32]!r} is longer than 16 characters (a comm)")
        return v


class ActivityRecord(WireModel):
    """What one container did of one kind to one target, aggregated over the batch window."""

    container_id: str | None = Field(description="Runtime-prefixed id (containerd://<id>); null for host processes")
    pod_uid: str | None = None
    kind: ActivityKind
    target: str = Field(
        min_length=1, max_length=MAX_PATH, description="The resolved absolute path, or what the kind says"
    )
    upper_layer: bool | None = Field(
        default=None, description="The file lives on the container's overlay upper layer; null when not known"
    )
    detail: dict[str, str] = Field(default_factory=dict, max_length=MAX_DETAIL_ENTRIES)
    first_seen: datetime
    last_seen: datetime
    count: int = Field(ge=1, le=INT64_MAX)
    samples: list[ActivitySample] = Field(default_factory=list, max_length=MAX_SAMPLES)

    @field_validator("container_id")
    @classmethod
    def _cid(cls, v: str | None) -> str | None:
        return check_container_id(v)

    @field_validator("pod_uid")
    @classmethod
    def _pod(cls, v: str | None) -> str | None:
        return _pod_uid(v)

    @field_validator("detail")
    @classmethod
    def _detail(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not 1 <= len(name) <= 64:
                raise ValueError(f"detail key {name[:80]!r} must be 1-64 characters")
            if len(value) > MAX_DETAIL_VALUE:
                raise ValueError(f"detail {name!r} is longer than {MAX_DETAIL_VALUE} characters")
        return v

    @model_validator(mode="after")
    def _order(self) -> ActivityRecord:
        if self.last_seen < self.first_seen:
            raise ValueError(
                f"activity {self.kind} {self.target}: last_seen {self.last_seen} is before first_seen {self.first_seen}"
            )
        return self

    @property
    def key(self) -> tuple[str | None, str, str]:
        return (self.container_id, self.kind, self.target)


class RuntimeBatch(Batch):
    """Records of one node for one window; ``seq`` orders a sensor's batches."""

    node_name: str = Field(min_length=1, max_length=253)
    sensor_id: str = Field(
        min_length=1, max_length=64, description="Stable per sensor process; with seq, orders batches"
    )
    seq: int = Field(ge=0, le=INT64_MAX)
    window_start: datetime
    window_end: datetime
    records: list[RuntimeRecord] = Field(default_factory=list, max_length=MAX_RECORDS)
    activities: list[ActivityRecord] = Field(default_factory=list, max_length=MAX_RECORDS)
    preventions: list[PreventionRecord] = Field(default_factory=list, max_length=MAX_PREVENTIONS)

    @field_validator("node_name")
    @classmethod
    def _node(cls, v: str) -> str:
        return check(DNS_SUBDOMAIN, v, "node name (DNS subdomain)")

    @model_validator(mode="after")
    def _consistent(self) -> RuntimeBatch:
        require_unique(self.records, lambda r: r.key, "record")
        require_unique(self.activities, lambda a: a.key, "activity")
        require_unique(self.preventions, lambda p: p.key, "prevention")
        return self


SensorStatus = Literal["running", "failed", "disabled"]


class SensorHeartbeat(WireModel):
    """A sensor's sign of life and health; the service shows it per node."""

    cluster_id: str = Field(min_length=1, max_length=64)
    component: Literal["sensor"] = "sensor"
    node_name: str = Field(min_length=1, max_length=253)
    status: SensorStatus = "running"
    error: str | None = Field(default=None, max_length=2048, description="Why the sensor failed or stopped")
    version: str = Field(default="", max_length=64)
    kernel: str = Field(default="", max_length=256)
    btf: bool = False
    events_seen: int = Field(default=0, ge=0, le=INT64_MAX, description="Events read from the kernel since start")
    events_lost: int = Field(
        default=0, ge=0, le=INT64_MAX, description="Events the kernel could not queue (ring buffer full)"
    )
    events_filtered: int = Field(default=0, ge=0, le=INT64_MAX, description="Host events skipped in the kernel")
    batches_spooled: int = Field(default=0, ge=0, le=INT64_MAX, description="Batches waiting in the on-disk spool now")
    batches_dropped: int = Field(
        default=0, ge=0, le=INT64_MAX, description="Batches dropped past the spool bound since start"
    )
    records_dropped: int = Field(default=0, ge=0, le=INT64_MAX)
    interval_seconds: int = Field(default=15, ge=1, le=3600)
    policy_revision: str | None = Field(
        default=None, max_length=64, description="The runtime policy revision loaded in the kernel; null: none yet"
    )
    enforcement_error: str | None = Field(
        default=None, max_length=2048, description="Why runtime prevention is not in force on this node"
    )

    @field_validator("node_name")
    @classmethod
    def _node(cls, v: str) -> str:
        return check(DNS_SUBDOMAIN, v, "node name (DNS subdomain)")
