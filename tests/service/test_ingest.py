"""Register a cluster, ingest a snapshot then deltas, and read back exactly what was sent, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from vigil.devtools.inventory import synthetic_deltas, synthetic_snapshot
from vigil.wire.inventory import InventoryDelta

from .helpers import ClusterModel, actual_nodes, actual_pods, actual_workloads, post_batch


def test_snapshot_then_deltas_read_back_exactly(service_on):
    svc = service_on
    cluster_id, cred = svc.register("prod-eu-1")
    model = ClusterModel()

    snap = synthetic_snapshot(cluster_id, nodes=4, pods=40, images=6, seed=7)
    resp = post_batch(svc, cred, snap, gzipped=True)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "batch_id": "snap-1",
        "applied": True,
        "counts": {"nodes": 4, "workloads": 8, "pods": 40, "containers": 80},
    }
    model.apply(snap)
    assert actual_pods(svc, cluster_id) == model.expected_pods()
    assert actual_nodes(svc, cluster_id) == model.expected_nodes()
    assert actual_workloads(svc, cluster_id) == model.expected_workloads()

    for delta in synthetic_deltas(snap, 12):
        assert post_batch(svc, cred, delta).json()["applied"] is True
        model.apply(delta)
    # Delete a workload and a node as well.
    drop = InventoryDelta.model_validate(
        {
            "kind": "delta",
            "batch_id": "drop-1",
            "cluster_id": cluster_id,
            "deletes": {
                "nodes": ["node-0003"],
                "workloads": [
                    {
                        "namespace": snap.workloads[0].namespace,
                        "kind": snap.workloads[0].kind,
                        "name": snap.workloads[0].name,
                    }
                ],
            },
        }
    )
    assert post_batch(svc, cred, drop).status_code == 200
    model.apply(drop)
    assert actual_pods(svc, cluster_id) == model.expected_pods()
    assert actual_nodes(svc, cluster_id) == model.expected_nodes()
    assert actual_workloads(svc, cluster_id) == model.expected_workloads()

    # A second snapshot replaces everything: objects absent from it are gone.
    snap2 = synthetic_snapshot(cluster_id, nodes=2, pods=5, images=2, seed=8, batch_id="snap-2")
    assert post_batch(svc, cred, snap2).json()["applied"] is True
    model.apply(snap2)
    assert actual_pods(svc, cluster_id) == model.expected_pods()
    assert actual_nodes(svc, cluster_id) == model.expected_nodes()
    assert len(actual_pods(svc, cluster_id)) == 5


def test_retried_batch_is_applied_once(service_on):
    svc = service_on
    cluster_id, cred = svc.register("retry")
    snap = synthetic_snapshot(cluster_id, nodes=1, pods=3, images=1)
    assert post_batch(svc, cred, snap).json()["applied"] is True
    delta = synthetic_deltas(snap, 1)[0]  # bumps every container's restart count by one
    first = post_batch(svc, cred, delta).json()
    second = post_batch(svc, cred, delta).json()
    assert first["applied"] is True and second == {"batch_id": delta.batch_id, "applied": False, "counts": {}}
    pod = next(p for p in actual_pods(svc, cluster_id) if p["uid"] == delta.pods[0].uid)
    original = next(p for p in snap.pods if p.uid == delta.pods[0].uid)
    assert [c["restart_count"] for c in pod["containers"]] == [
        c.restart_count + 1 for c in sorted(original.containers, key=lambda c: (c.kind, c.name))
    ]
    # The same snapshot id again does not wipe what the delta changed.
    assert post_batch(svc, cred, snap).json()["applied"] is False
    pod_after = next(p for p in actual_pods(svc, cluster_id) if p["uid"] == delta.pods[0].uid)
    assert pod_after == pod


def test_concurrent_copies_of_a_batch_apply_once_and_all_succeed(service_on):
    """Copies of one batch racing in (a controller retrying on a timeout) each get 200; one of them applies it."""
    svc = service_on
    cluster_id, cred = svc.register("race")
    snap = synthetic_snapshot(cluster_id, nodes=2, pods=400, images=2, batch_id="snap-race")
    start = threading.Barrier(8)

    def post(_: int):
        start.wait()
        return post_batch(svc, cred, snap)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(8)))
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    results = sorted((r.json() for r in responses), key=lambda body: not body["applied"])
    assert results[0] == {
        "batch_id": "snap-race",
        "applied": True,
        "counts": {"nodes": 2, "workloads": 80, "pods": 400, "containers": 800},
    }
    assert results[1:] == [{"batch_id": "snap-race", "applied": False, "counts": {}}] * 7
    assert len(actual_pods(svc, cluster_id)) == 400


def test_images_carry_blast_radius_across_clusters(live_service):
    svc = live_service
    a_id, a_cred = svc.register("a")
    b_id, b_cred = svc.register("b")
    shared = "registry.example.com/team0/app0:1.0"
    for cid, cred in ((a_id, a_cred), (b_id, b_cred)):
        snap = synthetic_snapshot(cid, nodes=1, pods=10, images=1, containers_per_pod=1)
        assert post_batch(svc, cred, snap).status_code == 200
    images = svc.list_all("/api/v1/images")
    assert [i["ref"].split("@")[0] for i in images] == [shared]
    assert images[0]["usage"] == {"containers": 20, "workloads": 4, "clusters": 2}
    assert images[0]["registry"] == "registry.example.com"
    assert images[0]["repository"] == "team0/app0"
    assert images[0]["tag"] == "1.0"
    only_a = svc.list_all("/api/v1/images", cluster=a_id)
    assert [i["id"] for i in only_a] == [images[0]["id"]]


def test_reregistering_a_name_keeps_the_cluster_id(live_service):
    first_id, first_cred = live_service.register("keep-me")
    second_id, second_cred = live_service.register("keep-me")
    assert first_id == second_id and first_cred != second_cred
    clusters = live_service.list_all("/api/v1/clusters")
    assert [(c["id"], c["name"]) for c in clusters] == [(first_id, "keep-me")]
