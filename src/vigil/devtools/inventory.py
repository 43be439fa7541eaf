"""Synthetic cluster inventories shaped like real ones, for tests and benchmarks.

Deterministic for a given size and seed: Deployments (with a ReplicaSet in the owner
chain), StatefulSets, DaemonSets and CronJob->Job chains, with init and regular
containers, images shared across workloads, and digests for running containers.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from typing import Any

from vigil.wire.inventory import InventoryDelta, InventorySnapshot


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def synthetic_snapshot(
    cluster_id: str,
    *,
    nodes: int = 3,
    pods: int = 10,
    images: int = 4,
    containers_per_pod: int = 2,
    seed: int = 1,
    batch_id: str = "snap-1",
) -> InventorySnapshot:
    rnd = random.Random(seed)
    node_list = [
        {
            "name": f"node-{i:04d}",
            "labels": {"kubernetes.io/hostname": f"node-{i:04d}", "kubernetes.io/arch": "amd64"},
            "kernel_version": "6.1.0-18-amd64",
            "os_image": "Debian GNU/Linux 12 (bookworm)",
            "container_runtime": "containerd://1.6.20",
            "architecture": "amd64",
            "kubelet_version": "v1.29.2",
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        for i in range(nodes)
    ]
    image_refs = [f"registry.example.com/team{i % 7}/app{i}:1.{i % 5}" for i in range(images)]
    kinds = ["Deployment", "StatefulSet", "DaemonSet", "CronJob"]
    workloads: list[dict[str, Any]] = []
    pod_list: list[dict[str, Any]] = []
    per_workload = 5
    n_workloads = max(1, pods // per_workload)
    for n in range(n_workloads):
        kind = kinds[n % len(kinds)]
        ns = f"ns-{n % 20}"
        name = f"{kind.lower()}-{n}"
        chain: list[dict[str, str]] = []
        if kind == "Deployment":
            chain = [{"kind": "ReplicaSet", "name": f"{name}-7d4b9c"}]
        elif kind == "CronJob":
            chain = [{"kind": "Job", "name": f"{name}-2891"}]
        workloads.append({"namespace": ns, "kind": kind, "name": name, "owner_chain": chain, "labels": {"app": name}})
    for p in range(pods):
        w = workloads[p % n_workloads]
        uid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        containers = []
        for c in range(containers_per_pod):
            ref = image_refs[rnd.randrange(len(image_refs))]
            kind = "init" if c == 0 and containers_per_pod > 1 else "regular"
            containers.append(
                {
                    "name": f"c{c}",
                    "kind": kind,
                    "image": ref,
                    "image_id": f"{ref.rsplit(':', 1)[0]}@{_digest(ref)}",
                    "image_digest": _digest(ref),
                    "container_id": "containerd://" + hashlib.sha256(f"{uid}/{c}".encode()).hexdigest(),
                    "state": "terminated" if kind == "init" else "running",
                    "restart_count": rnd.randrange(3),
                }
            )
        pod_list.append(
            {
                "uid": uid,
                "namespace": w["namespace"],
                "name": f"{w['name']}-{p}",
                "node_name": node_list[p % nodes]["name"] if nodes else None,
                "phase": "Running",
                "service_account": "default",
                "workload": {"kind": w["kind"], "name": w["name"]},
                "labels": {"app": w["name"]},
                "security": {
                    "privileged": p % 97 == 0,
                    "host_network": p % 53 == 0,
                    "added_capabilities": ["NET_ADMIN"] if p % 41 == 0 else [],
                },
                "containers": containers,
            }
        )
    return InventorySnapshot.model_validate(
        {
            "kind": "snapshot",
            "batch_id": batch_id,
            "cluster_id": cluster_id,
            "nodes": node_list,
            "workloads": workloads,
            "pods": pod_list,
        }
    )


def synthetic_deltas(snapshot: InventorySnapshot, count: int, seed: int = 2) -> list[InventoryDelta]:
    """``count`` deltas: pod restarts (upsert with a new restart count) and pod replacements."""
    rnd = random.Random(seed)
    pods = list(snapshot.pods)
    out = []
    for i in range(count):
        p = pods[rnd.randrange(len(pods))]
        delta: dict[str, Any]
        if i % 2 == 0:
            changed = p.model_copy(
                update={
                    "containers": [c.model_copy(update={"restart_count": c.restart_count + 1}) for c in p.containers]
                }
            )
            delta = {"pods": [changed.model_dump()]}
            pods[pods.index(p)] = changed
        else:
            new_uid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            replacement = p.model_copy(update={"uid": new_uid, "name": f"{p.name}-r{i}"})
            delta = {"pods": [replacement.model_dump()], "deletes": {"pods": [p.uid]}}
            pods[pods.index(p)] = replacement
        out.append(
            InventoryDelta.model_validate(
                {"kind": "delta", "batch_id": f"delta-{i}", "cluster_id": snapshot.cluster_id, **delta}
            )
        )
    return out
