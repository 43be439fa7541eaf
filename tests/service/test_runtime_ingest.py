"""Sensor batches and heartbeats: merged per (container, kind, sha256, path), idempotent, scoped, joined to pods."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from vigil.devtools.inventory import synthetic_snapshot
from vigil.wire.inventory import InventoryDelta

from .helpers import post_batch

SHA = "ab" * 32


# A batch of exec records alone: the file and kernel activity counts are there, at zero.
NO_ACTIVITIES = {"activities": 0, "activities_new": 0, "activities_merged": 0}


def _record(
    container_id, pod_uid, path="/bin/sh", count=1, first="2026-11-27T10:00:00Z", last="2026-11-27T10:00:01Z", argv=None
):
    return {
        "container_id": container_id,
        "pod_uid": pod_uid,
        "kind": "executable",
        "path": path,
        "sha256": SHA,
        "first_seen": first,
        "last_seen": last,
        "count": count,
        "samples": [
            {
                "time": first,
                "pid": 42,
                "ppid": 1,
                "uid": 0,
                "gid": 0,
                "comm": "sh",
                "filename": path,
                "argv": argv or [path],
            }
        ],
    }


def _batch(cluster_id, batch_id, seq, records, node="node-0000"):
    return {
        "batch_id": batch_id,
        "cluster_id": cluster_id,
        "node_name": node,
        "sensor_id": "s-1",
        "seq": seq,
        "window_start": "2026-11-27T10:00:00Z",
        "window_end": "2026-11-27T10:00:05Z",
        "records": records,
    }


def _post(svc, cred, path, body):
    return httpx.post(f"{svc.url}/api/v1/ingest/{path}", json=body, headers={"Authorization": f"Bearer {cred}"})


def test_runtime_records_merge_and_join_to_pods(service_on):
    svc = service_on
    cid, cred = svc.register("rt")
    snap = synthetic_snapshot(cid, nodes=1, pods=2, images=1, containers_per_pod=1)
    post_batch(svc, cred, snap)
    pod = snap.pods[0]
    container = pod.containers[0]
    first = _post(
        svc,
        cred,
        "runtime",
        _batch(cid, "s-1-0", 0, [_record(container.container_id, pod.uid, argv=["sh", "-c", "id"])]),
    )
    assert first.status_code == 200 and first.json()["counts"] == {
        "records": 1,
        "new": 1,
        "merged": 0,
        **NO_ACTIVITIES,
    }
    # The same batch again is not counted twice.
    assert (
        _post(svc, cred, "runtime", _batch(cid, "s-1-0", 0, [_record(container.container_id, pod.uid)])).json()[
            "applied"
        ]
        is False
    )
    later = _record(container.container_id, pod.uid, count=3, first="2026-11-27T10:05:00Z", last="2026-11-27T10:06:00Z")
    assert _post(svc, cred, "runtime", _batch(cid, "s-1-1", 1, [later])).json()["counts"] == {
        "records": 1,
        "new": 0,
        "merged": 1,
        **NO_ACTIVITIES,
    }
    # A host process (no container) is kept too, apart from the container's.
    host = _record(None, None, path="/usr/bin/true")
    assert _post(svc, cred, "runtime", _batch(cid, "s-1-2", 2, [host])).status_code == 200

    items = svc.list_all("/api/v1/processes", cluster=cid)
    assert len(items) == 2
    rec = next(i for i in items if i["container_id"] == container.container_id)
    assert rec["count"] == 4
    assert rec["first_seen_at"].startswith("2026-11-27T10:00:00") and rec["last_seen_at"].startswith(
        "2026-11-27T10:06:00"
    )
    assert rec["pod"] == {"namespace": pod.namespace, "name": pod.name}
    assert rec["workload"] == {"kind": pod.workload.kind, "name": pod.workload.name}
    assert rec["container"] == {
        "name": container.name,
        "image": container.image,
        "image_digest": container.image_digest,
    }
    assert [s["argv"] for s in rec["samples"]] == [["sh", "-c", "id"], ["/bin/sh"]]
    host_rec = next(i for i in items if i["container_id"] is None)
    assert host_rec["path"] == "/usr/bin/true" and host_rec["pod"] is None
    only = svc.list_all("/api/v1/processes", container_id=container.container_id)
    assert [i["id"] for i in only] == [rec["id"]]


def test_concurrent_copies_of_a_runtime_batch_apply_once_and_all_succeed(service_on):
    """A sensor retrying a batch on a timeout while the first copy is still being applied: every copy gets
    200, one applies it, and its records are counted once."""
    svc = service_on
    cid, cred = svc.register("rt-race")
    snap = synthetic_snapshot(cid, nodes=1, pods=1, images=1, containers_per_pod=1)
    assert post_batch(svc, cred, snap).status_code == 200
    pod = snap.pods[0]
    records = [_record(pod.containers[0].container_id, pod.uid, path=f"/bin/tool{i}", count=5) for i in range(2000)]
    body = _batch(cid, "s-1-race", 0, records)
    start = threading.Barrier(8)

    def post(_: int) -> httpx.Response:
        start.wait()
        return httpx.post(
            f"{svc.url}/api/v1/ingest/runtime", json=body, headers={"Authorization": f"Bearer {cred}"}, timeout=120
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(8)))
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    answers = sorted((r.json() for r in responses), key=lambda a: not a["applied"])
    assert answers[0] == {
        "batch_id": "s-1-race",
        "applied": True,
        "counts": {"records": 2000, "new": 2000, "merged": 0, **NO_ACTIVITIES},
    }
    assert answers[1:] == [{"batch_id": "s-1-race", "applied": False, "counts": {}}] * 7
    items = svc.list_all("/api/v1/processes", cluster=cid)
    assert sorted((i["path"], i["count"]) for i in items) == sorted((f"/bin/tool{i}", 5) for i in range(2000))


def test_runtime_batches_are_validated_and_scoped(live_service):
    svc = live_service
    a, a_cred = svc.register("a")
    b, _ = svc.register("b")
    other = _post(svc, a_cred, "runtime", _batch(b, "x", 0, []))
    assert other.status_code == 403
    bad_sha = _record("containerd://" + "c" * 64, None)
    bad_sha["sha256"] = "XYZ"
    resp = _post(svc, a_cred, "runtime", _batch(a, "y", 0, [bad_sha]))
    assert resp.status_code == 422
    assert resp.json()["detail"] == "body.records[0].sha256: 'XYZ' is not a file sha256 (64 lowercase hex)"
    backwards = _record("containerd://" + "c" * 64, None, first="2026-11-27T10:00:05Z", last="2026-11-27T10:00:00Z")
    resp = _post(svc, a_cred, "runtime", _batch(a, "z", 0, [backwards]))
    assert resp.status_code == 422 and "is before first_seen" in resp.json()["detail"]
    assert svc.list_all("/api/v1/processes") == []


def test_sensor_heartbeat_sets_node_status_and_relays_disable_label(live_service):
    svc = live_service
    cid, cred = svc.register("sensors")
    snap = synthetic_snapshot(cid, nodes=3, pods=3, images=1)
    post_batch(svc, cred, snap)
    label = InventoryDelta.model_validate(
        {
            "kind": "delta",
            "batch_id": "label",
            "cluster_id": cid,
            "nodes": [dict(snap.nodes[2].model_dump(), labels={"vigil.dev/sensor": "disabled"})],
        }
    )
    post_batch(svc, cred, label)
    beat = {
        "cluster_id": cid,
        "node_name": "node-0000",
        "version": "0.1.0",
        "kernel": "6.1.0",
        "btf": True,
        "events_seen": 10,
    }
    assert _post(svc, cred, "sensor-heartbeat", beat).json() == {"status": "ok", "sensor_disabled": False}
    failed = dict(beat, node_name="node-0001", status="failed", error="BTF missing")
    _post(svc, cred, "sensor-heartbeat", failed)
    assert _post(svc, cred, "sensor-heartbeat", dict(beat, node_name="node-0002")).json()["sensor_disabled"] is True
    nodes = {n["name"]: n["sensor"] for n in svc.list_all("/api/v1/nodes", cluster=cid)}
    assert {k: v["status"] for k, v in nodes.items()} == {
        "node-0000": "monitored_with_sensor",
        "node-0001": "sensor_failed",
        "node-0002": "disabled",
    }
    assert nodes["node-0001"]["error"] == "BTF missing" and nodes["node-0000"]["events_seen"] == 10
