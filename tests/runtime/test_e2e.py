"""Runtime analysis end to end, on real parts: images pushed to a loopback docker-registry and
scanned by the real scanner, containers run by containerd + runc under kubelet-style cgroups,
`vigil sensor` shipping what executes to the service, whose analyzer turns it into findings."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_e2e import (
    BUSYBOX,
    analysis_idle,
    e2e_unavailable,
    exec_in,
    import_advisories,
    inventory_snapshot,
    new_container_ids,
    post_inventory,
    push_image,
    put_file,
    remove_container,
    run_container,
    runtime_findings,
    runtime_service,
    scan_and_match,
    start_sensor,
    wait_for,
    wait_for_cmdline,
    wait_for_record,
    web_pod,
)

_skip = e2e_unavailable()
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
NODE = "node-rt-1"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pull(containerd, image) -> None:
    containerd.ctr("images", "pull", "--plain-http", image.ref, timeout=120)


def summary(findings: list[dict]) -> list[tuple]:
    return sorted((f["type"], f["severity"], f["subject"]) for f in findings)


def test_drift_tampering_and_suspicious_executions(registry, containerd, tmp_path: Path) -> None:
    busybox = BUSYBOX.read_bytes()
    v1, v2, dropped = busybox + b"\0v1", busybox + b"\0v2", busybox + b"\0dropped"
    image = push_image(registry, tag="drift", extra={"/opt/bin/true": v1})
    pull(containerd, image)
    svc = runtime_service(tmp_path / "data", registry)
    try:
        cluster_id, credential = svc.register("rt-e2e")
        pod, cid = new_container_ids()
        post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
        scan_and_match(svc)  # a container from a scanned image
        sensor = start_sensor(svc, credential, cluster_id, NODE, tmp_path / "sensor")
        try:
            init = run_container(containerd, image, pod, cid)
            wait_for_cmdline(init, ["/bin/sleep", "300"])
            # (1) image binaries (the entry point script, its shell, echo, sleep, and ls by hand): nothing
            assert exec_in(containerd, cid, "ls", "/bin/ls", "/app").returncode == 0
            wait_for_record(svc, cluster_id, "/bin/ls")
            wait_for_record(svc, cluster_id, "/bin/sleep")
            assert runtime_findings(svc, cluster_id) == []

            # (2) a new binary written into the container and run: runtime_drift with its hash
            put_file(init, "/app/true", dropped)
            assert exec_in(containerd, cid, "drift", "/app/true").returncode == 0
            wait_for_record(svc, cluster_id, "/app/true")
            (drift,) = runtime_findings(svc, cluster_id)
            assert (drift["type"], drift["severity"]) == ("runtime_drift", "high")
            assert drift["evidence"]["sha256"] == sha(dropped) and drift["evidence"]["path"] == "/app/true"
            assert drift["evidence"]["process"]["argv"] == ["/app/true"]
            assert drift["evidence"]["process"]["container"]["id"] == f"containerd://{cid}"
            assert drift["evidence"]["image"] == {"ref": image.ref, "digest": image.digest}
            assert drift["workload"] == {"kind": "Deployment", "name": "web"} and drift["namespace"] == "shop"
            assert (
                drift["risk"]["parts"]["severity"]["points"] == 30 and drift["risk"]["parts"]["runtime"]["points"] == 25
            )

            # (3) an image binary overwritten and run: tampered_binary with both hashes
            put_file(init, "/opt/bin/true", v2)
            assert exec_in(containerd, cid, "tamper", "/opt/bin/true").returncode == 0
            wait_for_record(svc, cluster_id, "/opt/bin/true")
            tampered = [f for f in runtime_findings(svc, cluster_id) if f["type"] == "tampered_binary"]
            assert [
                (f["severity"], f["evidence"]["expected_sha256"], f["evidence"]["actual_sha256"]) for f in tampered
            ] == [("critical", sha(v1), sha(v2))]

            # (4) a shell through an exec session: suspicious_exec (medium)
            assert exec_in(containerd, cid, "sh", "/bin/sh", "-c", "/bin/true").returncode == 0
            wait_for(
                "the exec-session shell analysed",
                lambda: (
                    any(f["type"] == "suspicious_exec" for f in runtime_findings(svc, cluster_id))
                    and analysis_idle(svc)
                ),
            )
            (shell,) = [f for f in runtime_findings(svc, cluster_id) if f["type"] == "suspicious_exec"]
            assert (shell["severity"], shell["evidence"]["rule"]["id"]) == ("medium", "shell-in-exec-session")
            assert shell["evidence"]["trigger"]["argv"] == ["/bin/sh", "-c", "/bin/true"]
            assert shell["evidence"]["trigger"]["pid"] != init

            # (5) a binary copied to /dev/shm and run: suspicious_exec (high); its bytes are the image's, so no drift
            put_file(init, "/dev/shm/true", busybox)
            assert exec_in(containerd, cid, "shm", "/dev/shm/true").returncode == 0
            wait_for_record(svc, cluster_id, "/dev/shm/true")
        finally:
            rc = sensor.stop()
            remove_container(containerd, cid, pod)
        assert rc == 0, sensor.log()[-3000:]
        assert summary(runtime_findings(svc, cluster_id)) == [
            ("runtime_drift", "high", f"/app/true (sha256:{sha(dropped)[:12]}) is not in the image"),
            ("suspicious_exec", "high", "exec-from-temp-dir: /dev/shm/true"),
            ("suspicious_exec", "medium", "shell-in-exec-session: /bin/sh"),
            (
                "tampered_binary",
                "critical",
                f"/opt/bin/true differs from the image (sha256:{sha(v1)[:12]} in the image, sha256:{sha(v2)[:12]} ran)",
            ),
        ]
        # Each finding once, however often it ran: dedup per (workload, image, subject).
        assert all(f["status"] == "open" for f in runtime_findings(svc, cluster_id))
    finally:
        svc.stop()


OS_RELEASE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n'
APK_DB = b"""P:busybox
V:1.36.1-r15
A:x86_64
o:busybox
F:bin
R:busybox
R:sh
R:ls
R:echo
R:sleep

P:zlib
V:1.3-r0
A:x86_64
o:zlib
F:lib
R:libz.so.1

"""


def osv(id_: str, package: str, fixed: str, vector: str) -> dict:
    return {
        "schema_version": "1.6.0",
        "id": id_,
        "modified": "2026-01-01T00:00:00Z",
        "published": "2026-01-01T00:00:00Z",
        "aliases": [],
        "summary": f"test advisory for {package}",
        "severity": [{"type": "CVSS_V3", "score": vector}],
        "affected": [
            {
                "package": {"ecosystem": "Alpine:v3.19", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }
        ],
    }


def test_running_vulnerability_only_for_packages_whose_code_ran(registry, containerd, tmp_path: Path) -> None:
    image = push_image(
        registry,
        tag="vuln",
        extra={
            "/etc/os-release": OS_RELEASE,
            "/lib/apk/db/installed": APK_DB,
            "/lib/libz.so.1": b"\x7fELF not really zlib",
        },
    )
    pull(containerd, image)
    svc = runtime_service(tmp_path / "data", registry, watch_period=2.0)
    try:
        import_advisories(
            svc,
            [
                osv(
                    "ALPINE-TEST-0001", "busybox", "1.36.1-r16", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
                ),  # 7.5 high
                osv("ALPINE-TEST-0002", "zlib", "1.3.1-r0", "CVSS:3.1/AV:N/AC:H/PR:L/UI:N/S:U/C:L/I:L/A:N"),  # medium
            ],
            tmp_path / "osv",
        )
        cluster_id, credential = svc.register("rt-vuln")
        pod, cid = new_container_ids()
        post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
        sensor = start_sensor(svc, credential, cluster_id, NODE, tmp_path / "sensor")
        try:
            init = run_container(containerd, image, pod, cid)
            wait_for_cmdline(init, ["/bin/sleep", "300"])
            # The records arrive before the image is scanned: they wait, nothing is guessed.
            wait_for(
                "the entry point's records",
                lambda: svc.get("/api/v1/runtime/status").json()["pending"]["waiting_for_scan"] >= 4,
            )
            assert runtime_findings(svc, cluster_id) == []
            scan_and_match(svc)
            wait_for("running_vulnerability", lambda: runtime_findings(svc, cluster_id) and analysis_idle(svc))
        finally:
            rc = sensor.stop()
            remove_container(containerd, cid, pod)
        assert rc == 0, sensor.log()[-3000:]
        (running,) = runtime_findings(svc, cluster_id)
        assert (running["type"], running["severity"], running["subject"]) == (
            "running_vulnerability",
            "critical",
            "busybox 1.36.1-r15 (ALPINE-TEST-0001) running",
        )
        ev = running["evidence"]
        assert ev["severity_raised_from"] == "high" and ev["vulnerability"]["fixed_versions"] == ["1.36.1-r16"]
        assert ev["file"]["image_path"] == "/bin/busybox" and ev["process"]["container"]["id"] == f"containerd://{cid}"
        packages = svc.list_all("/api/v1/findings", cluster=cluster_id, type="vulnerable_package")
        assert sorted(f["evidence"]["package"]["name"] for f in packages) == ["busybox", "zlib"]
        # zlib's code never ran: once the workload was watched for the period, it is labelled so.
        wait_for(
            "runtime labels",
            lambda: (
                {
                    f["evidence"]["package"]["name"]: f["runtime"]["state"]
                    for f in svc.list_all("/api/v1/findings", cluster=cluster_id, type="vulnerable_package")
                }
                == {"busybox": "running", "zlib": "not_observed_running"}
            ),
            timeout=15,
        )
        quiet = svc.list_all("/api/v1/findings", cluster=cluster_id, runtime="not_observed_running")
        assert [f["evidence"]["package"]["name"] for f in quiet] == ["zlib"]
        assert quiet[0]["risk"]["parts"]["runtime"]["points"] == -10
    finally:
        svc.stop()
