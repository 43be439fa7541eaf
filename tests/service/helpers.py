"""What the service should answer for a given inventory, computed from the batches alone."""

from __future__ import annotations

import gzip

import httpx
import orjson

from vigil.wire.inventory import InventoryDelta, InventorySnapshot


class ClusterModel:
    """The cluster state implied by a sequence of batches, kept independently of the store."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}
        self.workloads: dict[tuple, dict] = {}
        self.pods: dict[str, dict] = {}

    def apply(self, batch: InventorySnapshot | InventoryDelta) -> None:
        if isinstance(batch, InventorySnapshot):
            self.nodes, self.workloads, self.pods = {}, {}, {}
        for n in batch.nodes:
            self.nodes[n.name] = n.model_dump()
        for w in batch.workloads:
            self.workloads[(w.namespace, w.kind, w.name)] = w.model_dump()
        for p in batch.pods:
            self.pods[p.uid] = p.model_dump()
        if isinstance(batch, InventoryDelta):
            for uid in batch.deletes.pods:
                self.pods.pop(uid, None)
            for w in batch.deletes.workloads:
                self.workloads.pop((w.namespace, w.kind, w.name), None)
            for name in batch.deletes.nodes:
                self.nodes.pop(name, None)

    def expected_pods(self) -> list[dict]:
        out = []
        for p in self.pods.values():
            containers = sorted(
                (
                    {
                        "name": c["name"],
                        "kind": c["kind"],
                        "container_id": c["container_id"],
                        "image": c["image"],
                        "image_id": c["image_id"],
                        "image_digest": c["image_digest"],
                        "state": c["state"],
                        "restart_count": c["restart_count"],
                    }
                    for c in p["containers"]
                ),
                key=lambda c: (c["kind"], c["name"]),
            )
            out.append(
                {
                    "uid": p["uid"],
                    "namespace": p["namespace"],
                    "name": p["name"],
                    "node_name": p["node_name"],
                    "phase": p["phase"],
                    "service_account": p["service_account"],
                    "workload": p["workload"],
                    "labels": p["labels"],
                    "security": p["security"],
                    "containers": containers,
                }
            )
        return sorted(out, key=lambda p: p["uid"])

    def expected_nodes(self) -> list[dict]:
        return sorted(
            (
                {
                    "name": n["name"],
                    "labels": n["labels"],
                    "kernel_version": n["kernel_version"],
                    "os_image": n["os_image"],
                    "container_runtime": n["container_runtime"],
                    "architecture": n["architecture"],
                    "kubelet_version": n["kubelet_version"],
                    "conditions": {c["type"]: c["status"] for c in n["conditions"]},
                    "sensor_disabled": n["labels"].get("vigil.dev/sensor") == "disabled",
                }
                for n in self.nodes.values()
            ),
            key=lambda n: n["name"],
        )

    def expected_workloads(self) -> list[tuple]:
        return sorted(
            (w["namespace"], w["kind"], w["name"], tuple((o["kind"], o["name"]) for o in w["owner_chain"]))
            for w in self.workloads.values()
        )


def actual_pods(svc, cluster_id: str) -> list[dict]:
    pods = svc.list_all("/api/v1/pods", cluster=cluster_id)
    out = []
    for p in pods:
        p = dict(p)
        assert p.pop("cluster_id") == cluster_id
        p.pop("updated_at")
        p["containers"] = [{k: v for k, v in c.items() if k != "image_pk"} for c in p["containers"]]
        out.append(p)
    return sorted(out, key=lambda p: p["uid"])


def actual_nodes(svc, cluster_id: str) -> list[dict]:
    out = []
    for n in svc.list_all("/api/v1/nodes", cluster=cluster_id):
        n = dict(n)
        assert n.pop("cluster_id") == cluster_id
        n.pop("updated_at")
        # No sensor reports in these tests: inventory alone says "monitored" (or "disabled" by label).
        assert n.pop("sensor")["status"] == ("disabled" if n["sensor_disabled"] else "monitored")
        out.append(n)
    return sorted(out, key=lambda n: n["name"])


def actual_workloads(svc, cluster_id: str) -> list[tuple]:
    return sorted(
        (w["namespace"], w["kind"], w["name"], tuple((o["kind"], o["name"]) for o in w["owner_chain"]))
        for w in svc.list_all("/api/v1/workloads", cluster=cluster_id)
    )


def post_batch(svc, credential: str, batch, *, gzipped: bool = False) -> httpx.Response:
    body = orjson.dumps(batch.model_dump(mode="json") if hasattr(batch, "model_dump") else batch)
    headers = {"Authorization": f"Bearer {credential}", "Content-Type": "application/json"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return httpx.post(f"{svc.url}/api/v1/ingest/inventory", content=body, headers=headers, timeout=60)
