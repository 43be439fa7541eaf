"""The service side of runtime analysis on both store backends, with runtime batches posted as a
sensor does: records wait for the inventory, findings reach the stream and `since`, the
allow-list API silences a rule, and risk is rolled up on workloads, images and clusters."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_e2e import (
    inventory_snapshot,
    post_inventory,
    push_image,
    scan_and_match,
    sse_events,
    wait_for,
    web_pod,
)

from vigil.registry import RegistryClient, RegistryConfig
from vigil.service.jobs.workers import scan_worker

NODE = "node-a"
DROPPED = hashlib.sha256(b"downloaded payload").hexdigest()


def runtime_batch(
    cluster_id: str, container_id: str, pod_uid: str, path: str, sha: str, pid: int = 50, ppid: int = 10
) -> dict:
    now = datetime.now(UTC).isoformat()
    return {
        "batch_id": f"rt-{uuid.uuid4().hex[:16]}",
        "cluster_id": cluster_id,
        "node_name": NODE,
        "sensor_id": "s1",
        "seq": 0,
        "window_start": now,
        "window_end": now,
        "records": [
            {
                "container_id": f"containerd://{container_id}",
                "pod_uid": pod_uid,
                "kind": "executable",
                "path": path,
                "sha256": sha,
                "first_seen": now,
                "last_seen": now,
                "count": 1,
                "samples": [
                    {"time": now, "pid": pid, "ppid": ppid, "uid": 0, "gid": 0, "filename": path, "argv": [path, "-x"]}
                ],
            }
        ],
    }


def post_runtime(svc, credential: str, batch: dict) -> None:
    resp = httpx.post(
        f"{svc.url}/api/v1/ingest/runtime", json=batch, headers={"Authorization": f"Bearer {credential}"}, timeout=30
    )
    assert resp.status_code == 200, resp.text


@pytest.fixture
def scanned(service_on, registry):
    """The service on each backend, a cluster with one Deployment running a scanned image."""
    svc = service_on
    svc.trust_registry(registry.host)
    svc.app.state.workers.contents.scanner = scan_worker(
        svc.engine, RegistryClient(RegistryConfig.from_mapping({registry.host: {"plain_http": True}}))
    )
    image = push_image(registry, tag="svc")
    cluster_id, credential = svc.register("rt-svc")
    pod, cid = str(uuid.uuid4()), uuid.uuid4().hex * 2
    return svc, image, cluster_id, credential, pod, cid


def test_records_wait_for_inventory_then_reach_stream_and_since(scanned) -> None:
    svc, image, cluster_id, credential, pod, cid = scanned
    before = datetime.now(UTC) - timedelta(seconds=1)
    got: list[dict] = []
    reader = svc.token("viewer", "stream-reader")
    t = threading.Thread(
        target=lambda: got.extend(
            sse_events(f"{svc.url}/api/v1/findings/stream", reader, 1, timeout=30, type="runtime_drift")
        )
    )
    t.start()
    time.sleep(0.5)  # the stream starts at "now"
    # The sensor is faster than the controller: the record waits, nothing is guessed.
    post_runtime(svc, credential, runtime_batch(cluster_id, cid, pod, "/usr/local/bin/miner", DROPPED))
    wait_for(
        "the record queued", lambda: svc.get("/api/v1/runtime/status").json()["pending"]["waiting_for_inventory"] == 1
    )
    assert svc.list_all("/api/v1/findings", cluster=cluster_id) == []
    post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
    wait_for("the scan wait", lambda: svc.get("/api/v1/runtime/status").json()["pending"]["waiting_for_scan"] == 1)
    scan_and_match(svc)
    started = time.monotonic()
    t.join(30)
    (event,) = got
    assert time.monotonic() - started < 5
    assert event["event"]["kind"] == "opened" and event["event"]["to_status"] == "open"
    f = event["finding"]
    assert (f["type"], f["severity"], f["subject"]) == (
        "runtime_drift",
        "high",
        f"/usr/local/bin/miner (sha256:{DROPPED[:12]}) is not in the image",
    )
    assert (
        f["evidence"]["process"]["argv"] == ["/usr/local/bin/miner", "-x"] and f["risk"]["score"] == 30 + 25 + 5
    )  # root pod
    assert svc.get("/api/v1/runtime/status").json()["pending"] == {
        "waiting_for_inventory": 0,
        "waiting_for_scan": 0,
        "scan_failed": 0,
        "ready": 0,
    }

    since = [x["id"] for x in svc.list_all("/api/v1/findings", since=before.isoformat())]
    assert since == [f["id"]]
    assert svc.list_all("/api/v1/findings", since=(datetime.now(UTC) + timedelta(seconds=5)).isoformat()) == []
    bad = svc.get("/api/v1/findings", since="2026-01-01T00:00:00")
    assert bad.status_code == 422
    assert (
        bad.json()["detail"]
        == "query.since: '2026-01-01T00:00:00' has no time zone; add Z or an offset (e.g. 2026-01-01T00:00:00Z)"
    )

    # Resume with Last-Event-ID: the same event again, from the id before it.
    again = sse_events(f"{svc.url}/api/v1/findings/stream", reader, 1, timeout=10, after=event["event"]["id"] - 1)
    assert again[0]["event"]["id"] == event["event"]["id"]

    # Roll-ups carry the finding's score and its parts.
    (workload,) = svc.list_all("/api/v1/workloads", cluster=cluster_id)
    assert workload["risk"]["score"] == 60 and workload["risk"]["parts"]["top"] == {"finding_id": f["id"], "points": 60}
    (img,) = [i for i in svc.list_all("/api/v1/images", cluster=cluster_id)]
    assert img["risk"]["score"] == 60
    (cluster,) = [c for c in svc.list_all("/api/v1/clusters") if c["id"] == cluster_id]
    assert cluster["risk"]["parts"]["open_findings"] == 1


def test_allow_list_api_silences_a_rule_for_a_workload(scanned) -> None:
    svc, image, cluster_id, credential, pod, cid = scanned
    post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
    scan_and_match(svc)
    rules = svc.get("/api/v1/runtime/rules").json()["items"]
    assert [(r["id"], r["severity"]) for r in rules if r["finding_type"] == "suspicious_exec"] == [
        ("shell-in-exec-session", "medium"),
        ("exec-from-temp-dir", "high"),
        ("exec-from-memfd-or-deleted", "high"),
    ]
    entry = {
        "rule": "exec-from-temp-dir",
        "workload": "web",
        "namespace": "shop",
        "reason": "the app unpacks its plugins to /tmp",
    }
    viewer = svc.token("viewer", "v")
    denied = httpx.post(f"{svc.url}/api/v1/runtime/allow", json=entry, headers={"Authorization": f"Bearer {viewer}"})
    assert denied.status_code == 403
    admin = {"Authorization": f"Bearer {svc.admin_token}"}
    typo = httpx.post(f"{svc.url}/api/v1/runtime/allow", json={**entry, "rule": "exec-from-tmp"}, headers=admin)
    assert typo.status_code == 422
    assert typo.json()["detail"] == (
        "body.rule: rule 'exec-from-tmp' is not one of "
        "*, shell-in-exec-session, exec-from-temp-dir, exec-from-memfd-or-deleted, executable-dropped, "
        "image-file-modified, account-file-modified, credential-file-read, private-key-read, "
        "service-account-token-read, process-environ-read, kernel-control-write, host-mount, namespace-change, "
        "pivot-root, ptrace-attach, bpf-program-load, kernel-module-load"
    )
    created = httpx.post(f"{svc.url}/api/v1/runtime/allow", json=entry, headers=admin)
    assert created.status_code == 201 and created.json()["created_by"] == "token:test-admin"

    busybox = image.sha256("/bin/busybox")
    post_runtime(svc, credential, runtime_batch(cluster_id, cid, pod, "/tmp/plugin", busybox))
    post_runtime(svc, credential, runtime_batch(cluster_id, cid, pod, "/dev/fd/3", DROPPED))
    wait_for(
        "both analysed",
        lambda: (
            svc.get("/api/v1/runtime/status").json()["last_pass"]
            and svc.get("/api/v1/runtime/status").json()["pending"]["ready"] == 0
            and len(svc.list_all("/api/v1/findings", cluster=cluster_id)) == 2
        ),
    )
    found = sorted(
        (f["type"], f["severity"], f["subject"]) for f in svc.list_all("/api/v1/findings", cluster=cluster_id)
    )
    assert (
        found
        == [  # /tmp/plugin is allowed for web; the fexecve'd memfd is not
            ("runtime_drift", "high", f"/dev/fd/3 (sha256:{DROPPED[:12]}) is not in the image"),
            ("suspicious_exec", "high", "exec-from-memfd-or-deleted: /dev/fd/3"),
        ]
    )
    entry_id = created.json()["id"]
    assert httpx.delete(f"{svc.url}/api/v1/runtime/allow/{entry_id}", headers=admin).status_code == 204
    gone = httpx.delete(f"{svc.url}/api/v1/runtime/allow/{entry_id}", headers=admin)
    assert gone.status_code == 404 and gone.json()["detail"] == f"allow-list entry {entry_id} does not exist"
