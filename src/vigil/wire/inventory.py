"""Inventory batches: what a controller sends the service (POST /api/v1/ingest/inventory).

One schema, used by the controller to build batches and by the service to
validate them; the OpenAPI spec is generated from it. A batch is either a
``snapshot`` (the cluster's whole state: it replaces what the service holds) or
a ``delta`` (upserts and deletes). Every batch carries an id chosen by the sender
so that a retried batch is applied once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from vigil.model.image import is_sha256_digest
from vigil.wire.base import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    INT32_MAX,
    KIND,
    MAX_ITEMS,
    Batch,
    ObjectName,
    WireModel,
    check,
    check_container_id,
    require_unique,
)


class NodeCondition(WireModel):
    type: str = Field(min_length=1, max_length=128)
    status: Literal["True", "False", "Unknown"]


class Node(WireModel):
    name: ObjectName
    labels: dict[str, str] = Field(default_factory=dict)
    kernel_version: str = Field(default="", max_length=256)
    os_image: str = Field(default="", max_length=256)
    container_runtime: str = Field(default="", max_length=256)
    architecture: str = Field(default="", max_length=64)
    kubelet_version: str = Field(default="", max_length=64)
    conditions: list[NodeCondition] = Field(default_factory=list, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check(DNS_SUBDOMAIN, v, "node name (DNS subdomain)")

    @property
    def sensor_disabled(self) -> bool:
        return self.labels.get("vigil.dev/sensor") == "disabled"


class OwnerRef(WireModel):
    kind: str
    name: ObjectName

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        return check(KIND, v, "kind (CamelCase API kind)")


class WorkloadKey(WireModel):
    namespace: str
    kind: str
    name: ObjectName

    @field_validator("namespace")
    @classmethod
    def _ns(cls, v: str) -> str:
        return check(DNS_LABEL, v, "namespace (DNS label)")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        return check(KIND, v, "kind (CamelCase API kind)")


class Workload(WorkloadKey):
    """A top-level workload: Deployment, StatefulSet, DaemonSet, CronJob, Job, bare Pod, or a custom resource.

    ``owner_chain`` lists the objects between a pod and this workload, nearest
    first (for a Deployment: the ReplicaSet).
    """

    owner_chain: list[OwnerRef] = Field(default_factory=list, max_length=16)
    labels: dict[str, str] = Field(default_factory=dict)


ContainerKind = Literal["init", "regular", "ephemeral"]
ContainerState = Literal["waiting", "running", "terminated", "unknown"]
PodPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]


class Container(WireModel):
    name: ObjectName
    kind: ContainerKind = "regular"
    image: str = Field(min_length=1, max_length=1024, description="The image as written in the pod spec")
    image_id: str = Field(default="", max_length=1024, description="The runtime's imageID, as reported")
    image_digest: str | None = Field(
        default=None, description="Manifest digest the runtime pulled (sha256:...), when known"
    )
    container_id: str | None = Field(
        default=None, description="Runtime-prefixed id, e.g. containerd://<64 hex>; absent until started"
    )
    state: ContainerState = "unknown"
    restart_count: int = Field(default=0, ge=0, le=INT32_MAX)

    @field_validator("image_digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is not None and not is_sha256_digest(v):
            raise ValueError(f"{v!r} is not a sha256 digest (sha256: and 64 lowercase hex)")
        return v

    @field_validator("container_id")
    @classmethod
    def _cid(cls, v: str | None) -> str | None:
        return check_container_id(v)


class SecurityFacts(WireModel):
    privileged: bool = False
    host_pid: bool = False
    host_network: bool = False
    host_ipc: bool = False
    run_as_non_root: bool | None = None
    run_as_user: int | None = Field(default=None, ge=0, le=INT32_MAX)
    added_capabilities: list[str] = Field(default_factory=list, max_length=64)


class Pod(WireModel):
    uid: str = Field(min_length=1, max_length=64)
    namespace: str
    name: ObjectName
    node_name: str | None = None
    phase: PodPhase = "Unknown"
    service_account: str = Field(default="", max_length=253)
    workload: OwnerRef = Field(description="The top-level workload in the pod's namespace")
    labels: dict[str, str] = Field(default_factory=dict)
    security: SecurityFacts = Field(default_factory=SecurityFacts)
    containers: list[Container] = Field(default_factory=list, max_length=512)

    @field_validator("namespace")
    @classmethod
    def _ns(cls, v: str) -> str:
        return check(DNS_LABEL, v, "namespace (DNS label)")

    @model_validator(mode="after")
    def _unique_containers(self) -> Pod:
        seen: set[tuple[str, str]] = set()
        for c in self.containers:
            key = (c.kind, c.name)
            if key in seen:
                raise ValueError(f"container {c.kind}/{c.name} appears twice in pod {self.namespace}/{self.name}")
            seen.add(key)
        return self


class InventorySnapshot(Batch):
    """The whole state of a cluster; it replaces what the service held for that cluster."""

    kind: Literal["snapshot"]
    nodes: list[Node] = Field(default_factory=list, max_length=MAX_ITEMS)
    workloads: list[Workload] = Field(default_factory=list, max_length=MAX_ITEMS)
    pods: list[Pod] = Field(default_factory=list, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _consistent(self) -> InventorySnapshot:
        require_unique(self.nodes, lambda n: n.name, "node")
        require_unique(self.workloads, lambda w: f"{w.namespace}/{w.kind}/{w.name}", "workload")
        require_unique(self.pods, lambda p: p.uid, "pod uid")
        known = {(w.namespace, w.kind, w.name) for w in self.workloads}
        for p in self.pods:
            if (p.namespace, p.workload.kind, p.workload.name) not in known:
                raise ValueError(
                    f"pod {p.namespace}/{p.name} names workload {p.workload.kind}/{p.workload.name}, "
                    "which is not in the snapshot's workloads"
                )
        return self


class InventoryDeletes(WireModel):
    nodes: list[str] = Field(default_factory=list, max_length=MAX_ITEMS, description="node names")
    workloads: list[WorkloadKey] = Field(default_factory=list, max_length=MAX_ITEMS)
    pods: list[str] = Field(default_factory=list, max_length=MAX_ITEMS, description="pod uids")


class InventoryDelta(Batch):
    """Changes since the last batch: upserts (whole objects) then deletes."""

    kind: Literal["delta"]
    nodes: list[Node] = Field(default_factory=list, max_length=MAX_ITEMS)
    workloads: list[Workload] = Field(default_factory=list, max_length=MAX_ITEMS)
    pods: list[Pod] = Field(default_factory=list, max_length=MAX_ITEMS)
    deletes: InventoryDeletes = Field(default_factory=InventoryDeletes)

    @model_validator(mode="after")
    def _consistent(self) -> InventoryDelta:
        require_unique(self.nodes, lambda n: n.name, "node")
        require_unique(self.workloads, lambda w: f"{w.namespace}/{w.kind}/{w.name}", "workload")
        require_unique(self.pods, lambda p: p.uid, "pod uid")
        return self


InventoryBatch = Annotated[InventorySnapshot | InventoryDelta, Field(discriminator="kind")]


class IngestResult(BaseModel):
    batch_id: str
    applied: bool = Field(description="False when this batch id had already been applied")
    counts: dict[str, int] = Field(default_factory=dict)


class Heartbeat(WireModel):
    """A controller's sign of life; the service marks it stopped after 3 missed beats."""

    cluster_id: str = Field(min_length=1, max_length=64)
    component: Literal["controller"] = "controller"
    version: str = Field(default="", max_length=64)
    interval_seconds: int = Field(default=15, ge=1, le=3600)
