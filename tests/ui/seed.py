"""A small, exact world for the console tests: two clusters, sensors, processes and findings of each kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from vigil.devtools.inventory import synthetic_snapshot
from vigil.policy.trust import Pattern
from vigil.service.store import contents, policy
from vigil.service.store.findings import Observation, observe, set_status
from vigil.service.store.integrity import record_provenance
from vigil.service.store.runtime import apply_runtime_batch, record_sensor_heartbeat
from vigil.service.store.schema import images
from vigil.wire.runtime import RuntimeBatch, SensorHeartbeat


def post_batch(svc, credential: str, batch) -> httpx.Response:
    return httpx.post(
        f"{svc.url}/api/v1/ingest/inventory",
        json=batch.model_dump(mode="json"),
        headers={"Authorization": f"Bearer {credential}"},
        timeout=60,
    )


# Package findings whose workload has had runtime records this long, without their code running,
# are labelled not_observed_running (the seed's records start four minutes ago).
WATCH_PERIOD_S = 60.0
FILLER_PACKAGES = 50  # beyond one page of the image's package list (50 a page)
WEBHOOK_SECRET = "whsec-0123456789abcdef-signing"
WEBHOOK_URL_TOKEN = "tok-5f2a9c"

RUNTIME_DIGEST = "sha256:" + "a1" * 32
REGISTRY_DIGEST = "sha256:" + "b2" * 32


@dataclass
class World:
    prod: str = ""
    staging: str = ""
    snapshot: object = None
    staging_snapshot: object = None
    image_pk: dict[str, int] = field(default_factory=dict)  # ref -> pk
    digest: dict[str, str] = field(default_factory=dict)  # ref -> running digest
    alert_outputs: dict[str, int] = field(default_factory=dict)  # name -> id
    findings: dict[str, int] = field(default_factory=dict)  # label -> id

    def open_ids(self) -> set[int]:
        return {v for k, v in self.findings.items() if k != "resolved"}


def _image_pks(conn) -> dict[str, int]:
    out = {}
    for r in conn.execute(select(images)):
        out[f"{r.registry}/{r.repository}:{r.tag}"] = r.id
    return out


def _digests(conn) -> dict[str, str]:
    return {f"{r.registry}/{r.repository}:{r.tag}": r.digest for r in conn.execute(select(images))}


def _package(type_: str, name: str, version: str, found_in: str) -> dict:
    return dict(
        type=type_,
        name=name,
        version=version,
        purl=f"pkg:{type_}/{name}@{version}",
        ecosystem={"deb": "Debian:12", "npm": "npm"}[type_],
        cataloger={"deb": "dpkg", "npm": "npm"}[type_],
        found_in=found_in,
        source_name=None,
        source_version=None,
        arch=None,
        files=[],
        details={},
    )


def _vulnerability(package_id: int, vuln_id: str, severity: str, fixed: list[str], malicious: bool = False) -> dict:
    return dict(
        package_id=package_id,
        vuln_id=vuln_id,
        key_id=vuln_id,
        advisory_ids=[vuln_id],
        aliases=[],
        severity=severity,
        score=None,
        severity_source=None,
        fixed_versions=fixed,
        malicious=malicious,
        summary=f"{vuln_id} summary",
        links=[],
    )


def seed_contents(conn, digest: dict[str, str]) -> None:
    """Scans through the real queue: app0 scanned and matched, app2 failed, app1 queued (pending);
    the rest never queued (also pending)."""
    app0 = digest["registry.example.com/team0/app0:1.0"]
    contents.enqueue(conn, {app0: "linux/amd64"})
    job = contents.claim(conn, "seed-worker")
    assert job is not None and job.digest == app0
    packages = [
        _package("deb", "openssl", "3.0.2", "/var/lib/dpkg/status"),
        _package("deb", "zlib1g", "1:1.2.13", "/var/lib/dpkg/status"),
        _package("npm", "event-stream", "3.3.6", "/app/node_modules/event-stream/package.json"),
    ] + [_package("deb", f"libfill{i:02d}", "1.0", "/var/lib/dpkg/status") for i in range(FILLER_PACKAGES)]
    files = [dict(path="/usr/bin/curl", kind="file", sha256="d4" * 32, size=1000, mode=0o755, target=None)]
    result = contents.ScanResult(
        app0, "registry.example.com/team0/app0", "linux/amd64", {"id": "debian", "version": "12"}, files, packages, []
    )
    assert contents.record_result(conn, job, result)
    ids = {r.name: r.id for r in contents.stored_packages(conn, app0)}
    contents.replace_vulnerabilities(
        conn,
        app0,
        [
            _vulnerability(ids["openssl"], "CVE-2022-3602", "high", ["3.0.7"]),
            _vulnerability(ids["openssl"], "CVE-2023-0286", "medium", ["3.0.8"]),
            _vulnerability(ids["event-stream"], "MAL-2018-1", "unknown", [], malicious=True),
        ],
        "seed-revision",
        [],
        coverage={
            "status": "complete",
            "ecosystems": [
                {"ecosystem": e, "packages": n, "loaded": True, "records": r, "as_of": "2024-05-01T00:00:00Z"}
                for e, n, r in (("Debian:12", 2 + FILLER_PACKAGES, 2), ("npm", 1, 1))
            ],
        },
    )
    app2 = digest["registry.example.com/team2/app2:1.2"]
    contents.enqueue(conn, {app2: "linux/amd64"})
    job = contents.claim(conn, "seed-worker")
    assert job is not None and job.digest == app2
    assert contents.record_failure(conn, job, "registry.example.com: connection refused")
    contents.enqueue(conn, {digest["registry.example.com/team1/app1:1.1"]: "linux/amd64"})
    record_provenance(
        conn,
        [
            dict(
                digest=app0,
                source="https://git.example.com/team0/app0",
                revision="9f1c2e7",
                created="2024-05-01T10:00:00Z",
                authors="team0@example.com",
                version="1.0",
                labels={
                    "org.opencontainers.image.source": "https://git.example.com/team0/app0",
                    "org.opencontainers.image.revision": "9f1c2e7",
                },
                recorded_at=datetime.now(UTC),
            )
        ],
    )


def seed_policy(conn, staging_name: str) -> None:
    policy.add_trusted(conn, Pattern.parse("registry.example.com/team0"), None, "seed")
    policy.add_mirror(
        conn, Pattern.parse("docker.io"), Pattern.parse("artifactory.example.com/docker-remote"), None, "seed"
    )
    policy.add_trusted(conn, Pattern.parse("harbor.internal"), staging_name, "seed")


def seed_alert_outputs(svc, w: World) -> None:
    """Through the alerts API, as an admin would add them."""
    auth = {"Authorization": f"Bearer {svc.admin_token}"}
    for body in (
        {
            "name": "soc-webhook",
            "kind": "webhook",
            "url": f"https://hooks.example.com/vigil?token={WEBHOOK_URL_TOKEN}",
            "secret": WEBHOOK_SECRET,
            "threshold": "high",
        },
        {"name": "siem", "kind": "syslog", "address": "siem.example.com:5514", "protocol": "udp"},
    ):
        r = httpx.post(f"{svc.url}/api/v1/alerts/outputs", json=body, headers=auth, timeout=60)
        assert r.status_code == 201, r.text
        w.alert_outputs[body["name"]] = r.json()["id"]


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
    now = datetime.now(UTC)
    with svc.engine.begin() as conn:
        w.image_pk = _image_pks(conn)
        w.digest = _digests(conn)
        img = {ref: pk for ref, pk in w.image_pk.items()}
        app0 = img["registry.example.com/team0/app0:1.0"]
        app1 = img["registry.example.com/team1/app1:1.1"]
        app2 = img["registry.example.com/team2/app2:1.2"]
        running_pk = img[container.image]
        wl = dict(cluster_id=w.prod, namespace="ns-0", workload_kind="Deployment", workload_name="deployment-0")

        def add(label, **kw):
            w.findings[label], _ = observe(conn, Observation(dedup_key=label, **kw))

        add(
            "digest_mismatch",
            type="digest_mismatch",
            severity="critical",
            subject="registry.example.com/team0/app0:1.0",
            evidence={"runtime_digest": RUNTIME_DIGEST, "registry_digest": REGISTRY_DIGEST, "repository": "team0/app0"},
            image_pk=app0,
            **wl,
        )
        add(
            "untrusted",
            type="untrusted_registry",
            severity="high",
            subject="registry.example.com/team1/app1:1.1",
            evidence={"registry": "registry.example.com", "rule": "trusted: harbor.internal"},
            image_pk=app1,
            **wl,
        )
        add(
            "tag_moved",
            type="tag_moved",
            severity="medium",
            subject="registry.example.com/team2/app2:1.2",
            evidence={"runtime_digest": RUNTIME_DIGEST, "registry_digest": "sha256:" + "c3" * 32},
            image_pk=app2,
            cluster_id=w.prod,
        )
        add(
            "malicious",
            type="malicious_package",
            severity="critical",
            subject="npm/event-stream 3.3.6 (MAL-2018-1)",
            evidence={
                "package": {"type": "npm", "name": "event-stream", "version": "3.3.6"},
                "vulnerability": "MAL-2018-1",
                "malicious": True,
            },
            image_pk=running_pk,
            **wl,
        )
        openssl = {"type": "deb", "name": "openssl", "version": "3.0.2"}
        add(
            "running_vuln",
            type="running_vulnerability",
            severity="high",
            subject="openssl 3.0.2 (CVE-2022-3602)",
            evidence={"process": "/usr/bin/openssl", "package": openssl, "vulnerability": "CVE-2022-3602"},
            image_pk=running_pk,
            **wl,
        )
        # The same vulnerability of the same image in the two workloads running it: two findings,
        # one vulnerability.
        add(
            "vuln_d0",
            type="vulnerable_package",
            severity="high",
            subject="ns-0/Deployment/deployment-0: openssl 3.0.2 (CVE-2022-3602)",
            evidence={
                "package": openssl,
                "installed_version": "3.0.2",
                "vulnerability": "CVE-2022-3602",
                "fixed_versions": ["3.0.7"],
            },
            image_pk=running_pk,
            **wl,
        )
        add(
            "vuln_s1",
            type="vulnerable_package",
            severity="high",
            subject="ns-1/StatefulSet/statefulset-1: openssl 3.0.2 (CVE-2022-3602)",
            evidence={
                "package": openssl,
                "installed_version": "3.0.2",
                "vulnerability": "CVE-2022-3602",
                "fixed_versions": ["3.0.7"],
            },
            image_pk=running_pk,
            cluster_id=w.prod,
            namespace="ns-1",
            workload_kind="StatefulSet",
            workload_name="statefulset-1",
        )
        add(
            "staging_vuln",
            type="vulnerable_package",
            severity="low",
            subject="zlib 1.2.11 (CVE-2018-25032)",
            evidence={"package": "zlib"},
            cluster_id=w.staging,
            namespace="ns-0",
        )
        # Medium, but seen at runtime in an exposed pod: riskier than statefulset-1's high package finding.
        add(
            "staging_exec",
            type="suspicious_exec",
            severity="medium",
            subject="sh spawned by nginx",
            evidence={"argv": ["sh", "-c", "id"], "parent": "nginx"},
            cluster_id=w.staging,
            namespace="ns-0",
            workload_kind="Deployment",
            workload_name="deployment-0",
        )
        add(
            "resolved",
            type="runtime_drift",
            severity="high",
            subject="/tmp/x dropped",
            evidence={"path": "/tmp/x"},
            **wl,
        )
        set_status(conn, w.findings["resolved"], "resolved", "rebuilt image", "test")
        for node, status in (("node-0000", "running"), ("node-0001", "failed")):
            record_sensor_heartbeat(
                conn,
                SensorHeartbeat(
                    cluster_id=w.prod,
                    node_name=node,
                    status=status,
                    version="0.1.0",
                    kernel="6.1.0",
                    error="BPF load failed" if status == "failed" else None,
                ),
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
                                {
                                    "time": now.isoformat(),
                                    "pid": 42,
                                    "ppid": 1,
                                    "uid": 0,
                                    "gid": 0,
                                    "filename": "/usr/bin/curl",
                                    "argv": ["curl", "-s", "http://example.com"],
                                }
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
    with svc.engine.begin() as conn:
        # The scans go through the real queue, which claims only what the policy lets it pull: the
        # registry is trusted while they are seeded, then the world's own policy replaces that rule.
        everything = Pattern.parse("registry.example.com")
        policy.add_trusted(conn, everything, None, "seed")
        seed_contents(conn, w.digest)
        policy.remove_trusted(conn, everything, None, "seed")
        seed_policy(conn, "staging")
    seed_alert_outputs(svc, w)
    # The real labelling pass: running (a running_vulnerability of the same package and advisory
    # in the workload), not_observed_running (watched long enough), unwatched (no runtime record).
    svc.app.state.workers.runtime.run_pass(labels_now=True)
    w.running_image_pk = running_pk
    w.container = container
    return w
