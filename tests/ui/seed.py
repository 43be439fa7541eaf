"""A small, exact world for the console tests: two clusters, sensors, processes and findings of each kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import select

from vigil.devtools.inventory import synthetic_snapshot
from vigil.service.store.findings import Observation, observe, set_status
from vigil.service.store.runtime import apply_runtime_batch, record_sensor_heartbeat
from vigil.service.store.schema import images
from vigil.wire.runtime import RuntimeBatch, SensorHeartbeat



def post_batch(svc, credential: str, batch) -> httpx.Response:
    return httpx.post(
        f"{svc.url}/api/v1/ingest/inventory", json=batch.model_dump(mode="json"), headers={"Authorization": f"Bearer {credential}"}, timeout=60
    )

RUNTIME_DIGEST = "sha256:" + "a1" * 32
REGISTRY_DIGEST = "sha256:" + "b2" * 32


@dataclass
class World:
    prod: str = ""
    staging: str = ""
    snapshot: object = None
    staging_snapshot: object = None
    image_pk: dict[str, int] = field(default_factory=dict)  # ref -> pk
    findings: dict[str, int] = field(default_factory=dict)  # label -> id

    def open_ids(self) -> set[int]:
        return {v for k, v in self.findings.items() if k != "resolved"}


def _image_pks(conn) -> dict[str, int]:
    out = {}
    for r in conn.execute(select(images)):
        out[f"{r.registry}/{r.repository}:{r.tag}"] = r.id
    return out


def seed(svc) -> World:
    w = World()
    w.prod, cred = svc.register("prod")
    w.snapshot = synthetic_snapshot(w.prod, nodes=3, pods=10, images=4)
    assert post_batch(svc, cred, w.snapshot).status_code == 200
    w.staging, cred2 = svc.register("staging")
    w.staging_snapshot = synthetic_snapshot(w.staging, nodes=1, pods=5, images=2, seed=7, batch_id="snap-s")
    assert post_batch(svc, cred2, w.staging_snapshot).status_code == 200
    pod0 = next(p for p in w.snapshot.pods if p.workload.name == "deployment-0")
    container = next(c for c in pod0.containers if c.state == "running")
    now = datetime.now(timezone.utc)
    with svc.engine.begin() as conn:
        w.image_pk = _image_pks(conn)
        img = {ref: pk for ref, pk in w.image_pk.items()}
        app0 = img["registry.example.com/team0/app0:1.0"]
        app1 = img["registry.example.com/team1/app1:1.1"]
        app2 = img["registry.example.com/team2/app2:1.2"]
        running_pk = img[container.image]
        wl = dict(cluster_id=w.prod, namespace="ns-0", workload_kind="Deployment", workload_name="deployment-0")

        def add(label, **kw):
            w.findings[label], _ = observe(conn, Observation(dedup_key=label, **kw))

        add("digest_mismatch", type="digest_mismatch", severity="critical", subject="registry.example.com/team0/app0:1.0",
            evidence={"runtime_digest": RUNTIME_DIGEST, "registry_digest": REGISTRY_DIGEST, "repository": "team0/app0"}, image_pk=app0, **wl)
        add("untrusted", type="untrusted_registry", severity="high", subject="registry.example.com/team1/app1:1.1",
            evidence={"registry": "registry.example.com", "rule": "trusted: harbor.internal"}, image_pk=app1, **wl)
        add("tag_moved", type="tag_moved", severity="medium", subject="registry.example.com/team2/app2:1.2",
            evidence={"runtime_digest": RUNTIME_DIGEST, "registry_digest": "sha256:" + "c3" * 32}, image_pk=app2, cluster_id=w.prod)
        add("malicious", type="malicious_package", severity="critical", subject="npm/event-stream 3.3.6 (MAL-2018-1)",
            evidence={"package": "event-stream", "advisory": "MAL-2018-1"}, image_pk=running_pk, **wl)
        add("running_vuln", type="running_vulnerability", severity="high", subject="openssl 3.0.2 (CVE-2022-3602)",
            evidence={"process": "/usr/bin/openssl"}, image_pk=running_pk, **wl)
        add("staging_vuln", type="vulnerable_package", severity="low", subject="zlib 1.2.11 (CVE-2018-25032)",
            evidence={"package": "zlib"}, cluster_id=w.staging, namespace="ns-0")
        add("resolved", type="runtime_drift", severity="high", subject="/tmp/x dropped", evidence={"path": "/tmp/x"}, **wl)
        set_status(conn, w.findings["resolved"], "resolved", "rebuilt image", "test")
        for node, status in (("node-0000", "running"), ("node-0001", "failed")):
            record_sensor_heartbeat(
                conn, SensorHeartbeat(cluster_id=w.prod, node_name=node, status=status, version="0.1.0", kernel="6.1.0", error="BPF load failed" if status == "failed" else None)
            )
        apply_runtime_batch(
            conn,
            RuntimeBatch.model_validate(
                {
                    "batch_id": "rt-1",
                    "cluster_id": w.prod,
                    "node_name": "node-0000",
                    "sensor_id": "s1",
                    "seq": 0,
                    "window_start": (now - timedelta(minutes=5)).isoformat(),
                    "window_end": now.isoformat(),
                    "records": [
                        {
                            "container_id": container.container_id,
                            "pod_uid": pod0.uid,
                            "kind": "executable",
                            "path": "/usr/bin/curl",
                            "sha256": "d4" * 32,
                            "first_seen": (now - timedelta(minutes=4)).isoformat(),
                            "last_seen": (now - timedelta(minutes=1)).isoformat(),
                            "count": 3,
                            "samples": [
                                {"time": now.isoformat(), "pid": 42, "ppid": 1, "uid": 0, "gid": 0, "filename": "/usr/bin/curl", "argv": ["curl", "-s", "http://example.com"]}
                            ],
                        },
                        {
                            "container_id": None,
                            "kind": "executable",
                            "path": "/usr/sbin/sshd",
                            "sha256": "e5" * 32,
                            "first_seen": (now - timedelta(minutes=3)).isoformat(),
                            "last_seen": (now - timedelta(minutes=2)).isoformat(),
                            "count": 1,
                            "samples": [],
                        },
                    ],
                }
            ),
        )
    w.running_image_pk = running_pk
    w.container = container
    return w
