"""Runtime prevention on the wire: the policy the service pushes to each node's sensor, and what the sensor
reports it prevented (or, in audit mode, would have prevented).

The service knows namespaces and labels; the sensor knows cgroups. So the service resolves the shared
enforcement policy's runtime rules to containers (by runtime-prefixed id) on one node, and the sensor maps each
container to its cgroup and fills the kernel's maps. A sensor polls ``RUNTIME_POLICY_PATH`` with the revision it
holds; the service answers at once when the node's policy has another revision, else when it changes or after
``wait`` seconds, so a change reaches every sensor within the poll's reaction time, not a poll period.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vigil.wire.base import DNS_SUBDOMAIN, INT64_MAX, WireModel, check, check_container_id, require_unique

RUNTIME_POLICY_PATH = "/api/v1/sensors/runtime-policy"
MAX_POLICY_WAIT_SECONDS = 30
MAX_CONTAINERS_PER_NODE = 10_000
MAX_DENY_LIST = 100_000
MAX_DRIFT_SHA256 = 10_000  # per container
MAX_PATH = 4096
MAX_ARGV_ITEMS = 256
MAX_PARENTS = 8
MAX_SAMPLES = 5
MAX_PREVENTIONS = 10_000
MAX_LOAD_WATCH_PATHS = 256  # per container (vigil.service.analysis.runtime.load_watch)
LOAD_WATCH_PATH_LEN = 255  # the kernel's path buffer holds 255 bytes and a NUL

_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")


class PreventionRule(StrEnum):
    """What the kernel stops. Each is decided in the kernel from its maps, without a user-space round trip."""

    # exec of a file on the container's overlay upper layer (written after it started), or of a file whose
    # sha256 the service knows is in the image's manifest at no path (ContainerPrevention.drift_sha256)
    DRIFT = "drift"
    MEMFD_EXEC = "memfd_exec"  # exec of a memfd (fileless payload)
    DELETED_EXEC = "deleted_exec"  # exec of a file whose last link is gone
    TMP_EXEC = "tmp_exec"  # exec of a file under /tmp, /dev/shm or /var/tmp
    DENY_LISTED = "deny_listed"  # exec of a file whose sha256 is on the deny list (once hashed)
    ESCAPE = "escape"  # the escape-attempt syscalls of the file/kernel rules (the syscall itself completes)


PreventionMode = Literal["enforce", "audit"]  # a rule that is off is absent


def _sha(v: str | None) -> str | None:
    if v is not None and not _SHA256_HEX.match(v):
        raise ValueError(f"{v!r} is not a file sha256 (64 lowercase hex)")
    return v


def _revision(v: str) -> str:
    return check(_REVISION, v, "policy revision (1-64 of [A-Za-z0-9_.:-])")


class ContainerPrevention(WireModel):
    """The prevention rules that apply to one running container, and the policies that gave them."""

    container_id: str = Field(description="Runtime-prefixed id (containerd://<id>)")
    pod_uid: str | None = None
    namespace: str = Field(default="", max_length=63)
    pod_name: str = Field(default="", max_length=253)
    workload: str = Field(default="", max_length=512, description="kind/name of the owning workload")
    rules: dict[PreventionRule, PreventionMode] = Field(default_factory=dict)
    policies: dict[PreventionRule, str] = Field(
        default_factory=dict, description="For each rule: the name of the policy that set its mode"
    )
    drift_sha256: list[str] = Field(
        default_factory=list,
        max_length=MAX_DRIFT_SHA256,
        description="With the drift rule on: sha256s that ran in this container and that its image's manifest "
        "holds at no path (open runtime_drift / tampered_binary findings); a file with these bytes is drift",
    )

    @field_validator("container_id")
    @classmethod
    def _cid(cls, v: str) -> str:
        check_container_id(v)
        return v

    @field_validator("drift_sha256")
    @classmethod
    def _drift(cls, v: list[str]) -> list[str]:
        for digest in v:
            _sha(digest)
        return v


class ContainerLoadWatch(WireModel):
    """The package files whose opens one container's sensor reports (``package_load``): the files of the
    packages with open vulnerable findings in its image. A path ending in ``/`` watches everything under it."""

    container_id: str = Field(description="Runtime-prefixed id (containerd://<id>)")
    paths: list[str] = Field(default_factory=list, max_length=MAX_LOAD_WATCH_PATHS)
    left_out: int = Field(
        default=0, ge=0, le=INT64_MAX, description="Paths not listed: over the cap, or too long for the kernel"
    )

    @field_validator("container_id")
    @classmethod
    def _cid(cls, v: str) -> str:
        check_container_id(v)
        return v

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.startswith("/") or len(p.encode("utf-8", "surrogateescape")) > LOAD_WATCH_PATH_LEN:
                raise ValueError(f"load watch path {p[:80]!r} must be absolute and at most {LOAD_WATCH_PATH_LEN} bytes")
        return v


class NodeRuntimePolicy(WireModel):
    """Everything one node's sensor enforces. ``revision`` changes whenever anything here changes."""

    revision: str
    node_name: str = Field(min_length=1, max_length=253)
    generated_at: datetime
    containers: list[ContainerPrevention] = Field(default_factory=list, max_length=MAX_CONTAINERS_PER_NODE)
    deny_sha256: list[str] = Field(default_factory=list, max_length=MAX_DENY_LIST)
    load_watch: list[ContainerLoadWatch] = Field(
        default_factory=list,
        max_length=MAX_CONTAINERS_PER_NODE,
        description="Per container: the package files whose opens the sensor reports as package_load",
    )

    @field_validator("revision")
    @classmethod
    def _rev(cls, v: str) -> str:
        return _revision(v)

    @field_validator("node_name")
    @classmethod
    def _node(cls, v: str) -> str:
        return check(DNS_SUBDOMAIN, v, "node name (DNS subdomain)")

    @field_validator("deny_sha256")
    @classmethod
    def _deny(cls, v: list[str]) -> list[str]:
        for digest in v:
            _sha(digest)
        return v

    @model_validator(mode="after")
    def _unique(self) -> NodeRuntimePolicy:
        require_unique(self.containers, lambda c: c.container_id, "container")
        require_unique(self.load_watch, lambda c: c.container_id, "load watch container")
        return self


class PreventionSample(WireModel):
    """One prevented (or, in audit mode, would-be prevented) operation as the kernel reported it."""

    time: datetime
    pid: int = Field(ge=1, le=INT64_MAX)
    ppid: int = Field(ge=0, le=INT64_MAX)
    uid: int = Field(ge=0, le=INT64_MAX)
    comm: str = Field(default="", max_length=16)
    argv: list[str] = Field(default_factory=list, max_length=MAX_ARGV_ITEMS)
    parents: list[str] = Field(
        default_factory=list, max_length=MAX_PARENTS, description="comm of the parent chain, nearest first"
    )


class PreventionRecord(WireModel):
    """One rule acting on one file (or escape target) in one container, aggregated over the batch window."""

    container_id: str | None = Field(description="Runtime-prefixed id (containerd://<id>)")
    pod_uid: str | None = None
    rule: PreventionRule
    mode: PreventionMode
    killed: bool = Field(description="SIGKILL was sent from the kernel (enforce); false in audit mode")
    path: str = Field(min_length=1, max_length=MAX_PATH, description="The exec'd file, or the escape target")
    operation: str = Field(
        default="exec", max_length=32, description="exec, or the escape syscall (mount, unshare, setns, ...)"
    )
    sha256: str | None = Field(
        default=None, description="sha256 of the file, hashed from disk afterwards where it still exists"
    )
    upper_layer: bool | None = None
    policy_revision: str
    first_seen: datetime
    last_seen: datetime
    count: int = Field(ge=1, le=INT64_MAX)
    samples: list[PreventionSample] = Field(default_factory=list, max_length=MAX_SAMPLES)

    @field_validator("policy_revision")
    @classmethod
    def _rev(cls, v: str) -> str:
        return _revision(v)

    @field_validator("container_id")
    @classmethod
    def _cid(cls, v: str | None) -> str | None:
        return check_container_id(v)

    @field_validator("sha256")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        return _sha(v)

    @model_validator(mode="after")
    def _order(self) -> PreventionRecord:
        if self.last_seen < self.first_seen:
            raise ValueError(f"prevention {self.rule} {self.path}: last_seen is before first_seen")
        return self

    @property
    def key(self) -> tuple[str | None, str, str, str]:
        return (self.container_id, str(self.rule), self.operation, self.path)
