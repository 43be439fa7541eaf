"""The Kubernetes kinds the controller watches: one table, one row per kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["node", "pod", "owner"]


@dataclass(frozen=True, slots=True)
class WatchedKind:
    kind: str
    api_version: str
    plural: str
    role: Role

    @property
    def path(self) -> str:
        """The cluster-wide collection path (all namespaces)."""
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{base}/{self.plural}"


WATCHED_KINDS: tuple[WatchedKind, ...] = (
    WatchedKind("Node", "v1", "nodes", "node"),
    WatchedKind("Pod", "v1", "pods", "pod"),
    WatchedKind("ReplicationController", "v1", "replicationcontrollers", "owner"),
    WatchedKind("ReplicaSet", "apps/v1", "replicasets", "owner"),
    WatchedKind("Deployment", "apps/v1", "deployments", "owner"),
    WatchedKind("StatefulSet", "apps/v1", "statefulsets", "owner"),
    WatchedKind("DaemonSet", "apps/v1", "daemonsets", "owner"),
    WatchedKind("Job", "batch/v1", "jobs", "owner"),
    WatchedKind("CronJob", "batch/v1", "cronjobs", "owner"),
)

# Kinds whose objects the controller sees, so that it can tell "gone" from "not watched".
OWNER_KINDS: frozenset[str] = frozenset(k.kind for k in WATCHED_KINDS if k.role == "owner")
BY_KIND: dict[str, WatchedKind] = {k.kind: k for k in WATCHED_KINDS}
