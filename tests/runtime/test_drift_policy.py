"""The drift rule's second source, through the real service: a container's open runtime_drift and
tampered_binary findings (an image scanned by the real scanner, records judged by the runtime analyzer)
put the sha256s that ran there and that the image holds at no path in its node's runtime policy; a
resolved finding takes its sha256 out, and a sensor waiting on the policy hears of it within 2 s."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_e2e import inventory_snapshot, post_inventory, push_image, scan_and_match, wait_for, web_pod

from vigil.policy.prevention import revision_of
from vigil.registry import RegistryClient, RegistryConfig
from vigil.service.jobs.workers import scan_worker
from vigil.wire.prevention import RUNTIME_POLICY_PATH, ContainerPrevention

NODE = "node-drift"
TOOL, OTHER = b"the image's own tool\n", b"another file of the image\n"
DROPPED = hashlib.sha256(b"downloaded payload").hexdigest()  # nowhere in the image
PATCHED = hashlib.sha256(b"a patched tool").hexdigest()  # at an image path, and nowhere in the image
COPIED = hashlib.sha256(OTHER).hexdigest()  # at an image path, and the image's own bytes elsewhere
POLICY = {
    "policies": [
        {"name": "shop-drift", "mode": "enforce", "scope": {"namespaces": ["shop"]}, "runtime": {"drift": "enforce"}}
    ]
}


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _record(container_id: str, pod_uid: str, path: str, sha: str, now: str) -> dict:
    return {
        "container_id": f"containerd://{container_id}",
        "pod_uid": pod_uid,
        "kind": "executable",
        "path": path,
        "sha256": sha,
        "first_seen": now,
        "last_seen": now,
        "count": 1,
        "samples": [{"time": now, "pid": 50, "ppid": 10, "uid": 0, "gid": 0, "filename": path, "argv": [path]}],
    }


def _policy(svc, credential: str, **params) -> httpx.Response:
    resp = httpx.get(
        f"{svc.url}{RUNTIME_POLICY_PATH}", params={"node": NODE, **params}, headers=_h(credential), timeout=40
    )
    assert resp.status_code == 200, resp.text
    return resp


@pytest.fixture
def drifted(service_on, registry):
    """A scanned image with two files of its own, a container of it on NODE under the drift rule, and the
    records of three execs there: a dropped file, and two image paths holding other bytes."""
    svc = service_on
    svc.trust_registry(registry.host)
    svc.app.state.workers.contents.scanner = scan_worker(
        svc.engine, RegistryClient(RegistryConfig.from_mapping({registry.host: {"plain_http": True}}))
    )
    image = push_image(registry, tag="drift", extra={"/opt/app/tool": TOOL, "/opt/app/other": OTHER})
    cluster_id, credential = svc.register("drift-svc")
    pod, cid = str(uuid.uuid4()), uuid.uuid4().hex * 2
    assert (
        httpx.put(f"{svc.url}/api/v1/policy/enforcement", json=POLICY, headers=_h(svc.admin_token)).status_code == 200
    )
    post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
    scan_and_match(svc)
    now = datetime.now(UTC).isoformat()
    batch = {
        "batch_id": f"rt-{uuid.uuid4().hex[:16]}",
        "cluster_id": cluster_id,
        "node_name": NODE,
        "sensor_id": "s1",
        "seq": 0,
        "window_start": now,
        "window_end": now,
        "records": [
            _record(cid, pod, "/usr/local/bin/miner", DROPPED, now),
            _record(cid, pod, "/opt/app/tool", PATCHED, now),
            _record(cid, pod, "/opt/app/tool", COPIED, now),
        ],
    }
    resp = httpx.post(f"{svc.url}/api/v1/ingest/runtime", json=batch, headers=_h(credential), timeout=30)
    assert resp.status_code == 200, resp.text

    def opened() -> list[dict] | None:
        got = [
            f
            for f in svc.list_all("/api/v1/findings", cluster=cluster_id, status="open")
            if f["type"] in ("runtime_drift", "tampered_binary")
        ]
        return got if len(got) == 3 else None

    findings = wait_for("the three drift findings", opened, timeout=30)
    return svc, credential, cid, pod, findings


def test_open_drift_findings_list_their_non_image_sha256s_and_a_resolved_one_drops_out(drifted) -> None:
    svc, credential, cid, pod, findings = drifted
    assert sorted((f["type"], f["subject"]) for f in findings) == [
        ("runtime_drift", f"/usr/local/bin/miner (sha256:{DROPPED[:12]}) is not in the image"),
        (
            "tampered_binary",
            f"/opt/app/tool differs from the image (sha256:{hashlib.sha256(TOOL).hexdigest()[:12]} in the image, "
            f"sha256:{COPIED[:12]} ran)",
        ),
        (
            "tampered_binary",
            f"/opt/app/tool differs from the image (sha256:{hashlib.sha256(TOOL).hexdigest()[:12]} in the image, "
            f"sha256:{PATCHED[:12]} ran)",
        ),
    ]
    body = _policy(svc, credential).json()
    entry = {
        "container_id": f"containerd://{cid}",
        "pod_uid": pod,
        "namespace": "shop",
        "pod_name": "web-7d4b9c-x2v8q",
        "workload": "Deployment/web",
        "rules": {"drift": "enforce"},
        "policies": {"drift": "shop-drift"},
        # COPIED ran at an image path it is not the image's bytes for, but the image holds it elsewhere:
        # marking its bytes would stop the image's own /opt/app/other.
        "drift_sha256": sorted([DROPPED, PATCHED]),
    }
    assert body["containers"] == [entry]
    assert body["revision"] == revision_of(NODE, [ContainerPrevention.model_validate(entry)], [])

    # A sensor holding that revision waits; resolving the drift finding answers it within 2 s.
    held: list[tuple[float, dict]] = []
    waiter = threading.Thread(
        target=lambda: held.append(
            (time.monotonic(), _policy(svc, credential, revision=body["revision"], wait=20).json())
        )
    )
    waiter.start()
    time.sleep(1.0)  # the request is held by now
    (drift,) = [f for f in findings if f["type"] == "runtime_drift"]
    resolved_at = time.monotonic()
    resp = httpx.post(
        f"{svc.url}/api/v1/findings/{drift['id']}/status",
        json={"status": "resolved", "reason": "the miner was removed"},
        headers=_h(svc.admin_token),
    )
    assert resp.status_code == 200, resp.text
    waiter.join(25)
    ((answered_at, after),) = held
    assert answered_at - resolved_at < 2.0
    assert after["containers"] == [{**entry, "drift_sha256": [PATCHED]}]
    assert after["revision"] != body["revision"]
    assert _policy(svc, credential).json()["containers"] == after["containers"]
