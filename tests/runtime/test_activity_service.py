# ruff: noqa: E501  (the cases are tables: one activity a line)
"""File and kernel activity (issue 16) on the service, on both store backends: runtime batches with
activities posted as a sensor does, stored per (container, kind, target), judged by the activity rules
of the one rule table, each giving exactly its finding (type, severity, MITRE technique, evidence);
the entry point reading its own service account token is no finding, an allow-listed workload gives
nothing, a re-sent batch changes nothing, and admins (not viewers) set a rule's severity."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_e2e import inventory_snapshot, post_inventory, push_image, scan_and_match, wait_for, web_pod

from vigil.registry import RegistryClient, RegistryConfig
from vigil.service.jobs.workers import scan_worker

NODE = "node-a"
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/..2026_12_03_12_00_00.123456789/token"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\n"
ACTIVITY_TYPES = "file_tampering,sensitive_file_read,container_escape_attempt,ptrace_attach,kernel_activity"


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def exec_record(cid: str, pod: str, path: str, sha: str, pid: int, ppid: int, t: float, argv: list[str]) -> dict:
    return {
        "container_id": f"containerd://{cid}",
        "pod_uid": pod,
        "kind": "executable",
        "path": path,
        "sha256": sha,
        "first_seen": at(t),
        "last_seen": at(t),
        "count": 1,
        "samples": [
            {
                "time": at(t),
                "pid": pid,
                "ppid": ppid,
                "uid": 0,
                "gid": 0,
                "comm": path.rsplit("/", 1)[-1],
                "filename": path,
                "argv": argv,
            }
        ],
    }


def activity(
    cid: str, pod: str, kind: str, target: str, sample: dict, detail: dict | None = None, upper: bool | None = None
) -> dict:
    return {
        "container_id": f"containerd://{cid}",
        "pod_uid": pod,
        "kind": kind,
        "target": target,
        "upper_layer": upper,
        "detail": detail or {},
        "first_seen": sample["time"],
        "last_seen": sample["time"],
        "count": 1,
        "samples": [sample],
    }


def proc(pid: int, ppid: int, comm: str, argv: list[str], parents: list[str], t: float, exe: str = "/bin/busybox"):
    return {
        "time": at(t),
        "pid": pid,
        "ppid": ppid,
        "uid": 0,
        "comm": comm,
        "exe": exe,
        "argv": argv,
        "parents": parents,
    }


def batch(cluster_id: str, records: list[dict], activities: list[dict], seq: int = 0) -> dict:
    return {
        "batch_id": f"rt-{uuid.uuid4().hex[:16]}",
        "cluster_id": cluster_id,
        "node_name": NODE,
        "sensor_id": "s1",
        "seq": seq,
        "window_start": at(0),
        "window_end": at(60),
        "records": records,
        "activities": activities,
    }


def post(svc, credential: str, body: dict) -> dict:
    resp = httpx.post(
        f"{svc.url}/api/v1/ingest/runtime", json=body, headers={"Authorization": f"Bearer {credential}"}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def idle(svc) -> bool:
    status = svc.get("/api/v1/runtime/status").json()
    return bool(status["last_pass"]) and status["pending"]["ready"] == 0 and status["pending_activities"]["ready"] == 0


def findings(svc, cluster_id: str, types: str = ACTIVITY_TYPES) -> list[dict]:
    return svc.list_all("/api/v1/findings", cluster=cluster_id, type=types, status="open")


def settle(svc, cluster_id: str, n: int, types: str = ACTIVITY_TYPES) -> list[dict]:
    """Wait until the analyzer has run over what was posted and ``n`` findings are open."""
    svc.app.state.workers.runtime.run_pass()
    return wait_for(f"{n} findings", lambda: idle(svc) and len(got := findings(svc, cluster_id, types)) == n and got)


@pytest.fixture
def running(service_on, registry):
    """A scanned Deployment shop/web whose container's entry point (pid 100) ran from the image."""
    svc = service_on
    svc.trust_registry(registry.host)
    svc.app.state.workers.contents.scanner = scan_worker(
        svc.engine, RegistryClient(RegistryConfig.from_mapping({registry.host: {"plain_http": True}}))
    )
    image = push_image(registry, tag="act", extra={"/etc/passwd": PASSWD})
    cluster_id, credential = svc.register("act")
    pod, cid = str(uuid.uuid4()), uuid.uuid4().hex * 2
    post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
    scan_and_match(svc)
    entry = exec_record(cid, pod, "/app/run.sh", image.sha256("/bin/busybox"), 100, 90, 0, ["/app/run.sh"])
    return svc, image, cluster_id, credential, pod, cid, entry


def each_case(cid: str, pod: str) -> list[dict]:
    """The ACTIVITY.md cases, as the sensor reports them, all from an exec-session shell (pid 200)."""
    sh = ["sh"]
    return [
        # (1) cp a new binary to /usr/local/bin, then chmod +x it: one drop
        activity(cid, pod, "file_write", "/usr/local/bin/tool", proc(201, 200, "cp", ["cp", "/tmp/t", "/usr/local/bin/tool"], sh, 10), upper=True),
        activity(cid, pod, "file_chmod", "/usr/local/bin/tool", proc(202, 200, "chmod", ["chmod", "+x", "/usr/local/bin/tool"], sh, 11), {"mode": "0755"}, True),
        # (2) overwrite an image binary and /etc/passwd
        activity(cid, pod, "file_write", "/bin/busybox", proc(203, 200, "cp", ["cp", "/tmp/t", "/bin/busybox"], sh, 12), upper=True),
        activity(cid, pod, "file_write", "/etc/passwd", proc(204, 200, "sh", ["sh", "-c", "echo x >> /etc/passwd"], sh, 13), upper=True),
        # (3) read /etc/shadow
        activity(cid, pod, "file_read", "/etc/shadow", proc(205, 200, "cat", ["cat", "/etc/shadow"], sh, 14)),
        # (4) read the service account token from the shell
        activity(cid, pod, "file_read", TOKEN, proc(206, 200, "cat", ["cat", TOKEN.rsplit("/", 2)[0] + "/token"], sh, 15)),
        # (5) write core_pattern
        activity(cid, pod, "file_write", "/proc/sys/kernel/core_pattern", proc(207, 200, "sh", ["sh", "-c", "echo '|/x' > /proc/sys/kernel/core_pattern"], sh, 16)),
        # (6) unshare a new mount namespace
        activity(cid, pod, "unshare", "CLONE_NEWNS", proc(208, 200, "unshare", ["unshare", "-m", "sh"], sh, 17), {"flags": "CLONE_NEWNS"}),
        # (7) ptrace-attach to another process
        activity(cid, pod, "ptrace", "pid:4242 comm:sleep", proc(209, 200, "tracer", ["/tmp/tracer", "4242"], sh, 18, exe="/tmp/tracer")),
        # a BPF program, a kernel module, a memfd (no finding of its own)
        activity(cid, pod, "bpf_load", "bpf", proc(210, 200, "loader", ["/tmp/loader"], sh, 19, exe="/tmp/loader"), {"prog_type": "kprobe"}),
        activity(cid, pod, "module_load", "rootkit.ko", proc(211, 200, "insmod", ["insmod", "rootkit.ko"], sh, 20)),
        activity(cid, pod, "memfd_create", "memfd:x", proc(212, 200, "python3", ["python3"], sh, 21, exe="/usr/bin/python3"), {"name": "x"}),
    ]  # fmt: skip


EXPECTED = [
    ("container_escape_attempt", "critical", "T1611", "kernel-control-write", "/proc/sys/kernel/core_pattern"),
    ("container_escape_attempt", "critical", "T1611", "namespace-change", "CLONE_NEWNS"),
    ("file_tampering", "high", "T1098", "account-file-modified", "/etc/passwd"),
    ("file_tampering", "high", "T1105", "executable-dropped", "/usr/local/bin/tool"),
    ("file_tampering", "high", "T1554", "image-file-modified", "/bin/busybox"),
    ("kernel_activity", "high", "T1014", "bpf-program-load", "bpf"),
    ("kernel_activity", "high", "T1547.006", "kernel-module-load", "rootkit.ko"),
    ("ptrace_attach", "high", "T1055.008", "ptrace-attach", "pid:4242 comm:sleep"),
    ("sensitive_file_read", "high", "T1003.008", "credential-file-read", "/etc/shadow"),
    ("sensitive_file_read", "high", "T1528", "service-account-token-read", TOKEN),
]  # fmt: skip


def summary(found: list[dict]) -> list[tuple]:
    return sorted(
        (f["type"], f["severity"], f["evidence"]["mitre"], f["evidence"]["rule"]["id"], f["subject"].split(": ", 1)[1])
        for f in found
    )


def test_each_activity_gives_exactly_its_finding_with_its_evidence(running) -> None:
    svc, image, cluster_id, credential, pod, cid, entry = running
    # The entry point's family reads the token (the app and a child it started): no finding.
    family = activity(cid, pod, "file_read", TOKEN, proc(101, 100, "app", ["app"], ["run.sh"], 1))
    first = batch(cluster_id, [entry], [family])
    assert post(svc, credential, first)["counts"]["activities_new"] == 1
    svc.app.state.workers.runtime.run_pass()
    wait_for("the first batch analysed", lambda: idle(svc))
    assert findings(svc, cluster_id) == []

    shell = exec_record(cid, pod, "/bin/sh", image.sha256("/bin/busybox"), 200, 199, 5, ["sh"])
    body = batch(cluster_id, [shell], each_case(cid, pod), seq=1)
    counts = post(svc, credential, body)["counts"]
    assert (counts["activities"], counts["activities_new"], counts["activities_merged"]) == (12, 11, 1)
    found = settle(svc, cluster_id, len(EXPECTED))
    assert summary(found) == EXPECTED

    (token,) = [f for f in found if f["evidence"]["rule"]["id"] == "service-account-token-read"]
    ev = token["evidence"]
    assert ev["reason"] == (
        f"read the service account token {TOKEN} from pid 206 (cat), "
        "which is not the container's entry point nor started by it"
    )
    assert ev["process"]["path"] == "/bin/busybox"
    assert ev["process"]["sha256"] == image.sha256("/bin/busybox")
    assert ev["process"]["argv"] == ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]
    assert ev["process"]["parents"] == ["sh"]
    assert ev["process"]["container"] == {
        "id": f"containerd://{cid}",
        "name": "app",
        "pod": "web-7d4b9c-x2v8q",
        "pod_uid": pod,
        "node": NODE,
    }
    assert ev["workload"] == {"namespace": "shop", "kind": "Deployment", "name": "web"}
    assert ev["activity"]["count"] == 2  # the entry point's read and the shell's, merged
    assert ev["rule"]["mitre_url"] == "https://attack.mitre.org/techniques/T1528/"
    assert (token["namespace"], token["workload"]["kind"], token["workload"]["name"]) == ("shop", "Deployment", "web")

    (drop,) = [f for f in found if f["evidence"]["rule"]["id"] == "executable-dropped"]
    assert drop["evidence"]["reason"] == (
        "made executable (mode 0755) /usr/local/bin/tool: a new file in /usr/local/bin, a binary directory"
    )
    (ptrace,) = [f for f in found if f["type"] == "ptrace_attach"]
    assert ptrace["evidence"]["process"]["path"] == "/tmp/tracer" and ptrace["evidence"]["process"]["sha256"] is None

    # The shell itself is an exec session; that is suspicious_exec, as before.
    (session,) = findings(svc, cluster_id, "suspicious_exec")
    assert session["subject"] == "shell-in-exec-session: /bin/sh" and session["evidence"]["rule"]["mitre"] == "T1609"

    # The activities are listed per container and per workload, typed.
    listed = svc.list_all("/api/v1/runtime/activities", cluster=cluster_id, container_id=f"containerd://{cid}")
    assert len(listed) == 12
    (tok,) = [a for a in listed if a["target"] == TOKEN]
    assert (tok["kind"], tok["count"], [s["pid"] for s in tok["samples"]]) == ("file_read", 2, [101, 206])
    assert tok["workload"] == {"kind": "Deployment", "name": "web"} and tok["pod"]["name"] == "web-7d4b9c-x2v8q"
    reads = svc.list_all(
        "/api/v1/runtime/activities", namespace="shop", workload_kind="Deployment", workload="web", kind="file_read"
    )
    assert sorted(a["target"] for a in reads) == ["/etc/shadow", TOKEN]
    bad = svc.get("/api/v1/runtime/activities", kind="open")
    assert bad.status_code == 422 and bad.json()["detail"].startswith("query.kind: 'open' is not one of file_write, ")

    # The same batch again: applied once, nothing changes.
    before = {f["id"]: f["last_seen_at"] for f in findings(svc, cluster_id)}
    again = post(svc, credential, body)
    assert again["applied"] is False
    svc.app.state.workers.runtime.run_pass()
    assert {f["id"]: f["last_seen_at"] for f in findings(svc, cluster_id)} == before
    relisted = svc.list_all("/api/v1/runtime/activities", cluster=cluster_id)
    assert sorted((a["target"], a["count"]) for a in relisted) == sorted((a["target"], a["count"]) for a in listed)


def test_other_sensitive_reads_and_escapes(running) -> None:
    svc, image, cluster_id, credential, pod, cid, entry = running
    sh = ["sh"]
    cases = [
        activity(cid, pod, "file_read", "/etc/ssl/private/server.key", proc(301, 200, "cat", ["cat", "server.key"], sh, 10)),
        activity(cid, pod, "file_read", "/proc/100/environ", proc(302, 200, "cat", ["cat", "/proc/100/environ"], sh, 11)),
        activity(cid, pod, "file_read", "/proc/303/environ", proc(303, 200, "cat", ["cat", "/proc/self/environ"], sh, 12)),
        activity(cid, pod, "file_write", "/sys/fs/cgroup/memory/release_agent", proc(304, 200, "sh", ["sh"], sh, 13)),
        activity(cid, pod, "mount", "/mnt/cg", proc(305, 200, "mount", ["mount", "-t", "cgroup", "cgroup", "/mnt/cg"], sh, 14), {"source": "cgroup", "fstype": "cgroup"}),
        activity(cid, pod, "mount", "/mnt/host", proc(306, 200, "mount", ["mount", "/dev/sda1", "/mnt/host"], sh, 15), {"source": "/dev/sda1", "fstype": "ext4"}),
        activity(cid, pod, "mount", "/mnt/scratch", proc(307, 200, "mount", ["mount", "-t", "tmpfs", "tmpfs", "/mnt/scratch"], sh, 16), {"source": "tmpfs", "fstype": "tmpfs"}),
        activity(cid, pod, "pivot_root", "/mnt/host", proc(308, 200, "pivot_root", ["pivot_root", ".", "old"], sh, 17)),
        activity(cid, pod, "setns", "setns", proc(309, 200, "nsenter", ["nsenter", "-t", "1", "-m"], sh, 18), {"flags": "CLONE_NEWNS|CLONE_NEWPID"}),
        # a file under /etc that is not of the image, nor an account file: no finding
        activity(cid, pod, "file_write", "/etc/app/cache.conf", proc(310, 200, "sh", ["sh"], sh, 19), upper=True),
    ]  # fmt: skip
    post(svc, credential, batch(cluster_id, [entry], cases))
    found = settle(svc, cluster_id, 7)
    assert summary(found) == [
        ("container_escape_attempt", "critical", "T1611", "host-mount", "/mnt/cg"),
        ("container_escape_attempt", "critical", "T1611", "host-mount", "/mnt/host"),
        ("container_escape_attempt", "critical", "T1611", "kernel-control-write", "/sys/fs/cgroup/memory/release_agent"),
        ("container_escape_attempt", "critical", "T1611", "namespace-change", "setns"),
        ("container_escape_attempt", "critical", "T1611", "pivot-root", "/mnt/host"),
        ("sensitive_file_read", "high", "T1552.001", "process-environ-read", "/proc/100/environ"),
        ("sensitive_file_read", "high", "T1552.004", "private-key-read", "/etc/ssl/private/server.key"),
    ]  # fmt: skip
    reasons = {f["subject"]: f["evidence"]["reason"] for f in found}
    assert reasons["host-mount: /mnt/host"] == "mounted the device /dev/sda1 on /mnt/host: a host disk"
    assert reasons["namespace-change: setns"] == "setns: entered other namespaces (CLONE_NEWNS|CLONE_NEWPID)"


def test_an_allow_listed_workload_gives_nothing(running) -> None:
    svc, image, cluster_id, credential, pod, cid, entry = running
    admin = {"Authorization": f"Bearer {svc.admin_token}"}
    for rule in ("namespace-change", "ptrace-attach"):
        resp = httpx.post(
            f"{svc.url}/api/v1/runtime/allow",
            json={"rule": rule, "namespace": "shop", "workload": "web", "reason": "the app sandboxes its workers"},
            headers=admin,
        )
        assert resp.status_code == 201, resp.text
    sh = ["sh"]
    post(
        svc,
        credential,
        batch(
            cluster_id,
            [entry],
            [
                activity(
                    cid,
                    pod,
                    "unshare",
                    "unshare",
                    proc(101, 100, "app", ["app"], ["run.sh"], 1),
                    {"flags": "CLONE_NEWUSER"},
                ),
                activity(cid, pod, "ptrace", "pid:4242 comm:app", proc(102, 100, "app", ["app"], ["run.sh"], 2)),
                activity(cid, pod, "file_read", "/etc/shadow", proc(103, 200, "cat", ["cat", "/etc/shadow"], sh, 3)),
            ],
        ),  # fmt: skip
    )
    (only,) = settle(svc, cluster_id, 1)  # only the rule nobody allowed
    assert (only["type"], only["evidence"]["rule"]["id"]) == ("sensitive_file_read", "credential-file-read")
    assert svc.get("/api/v1/runtime/status").json()["last_pass"]["silenced"] >= 0
    history = svc.get("/api/v1/runtime/rules/history").json()["items"]
    assert [(h["rule"], h["change"], h["by"]) for h in history] == [
        ("ptrace-attach", "allowed for namespace shop, workload web (the app sandboxes its workers)", "token:test-admin"),
        ("namespace-change", "allowed for namespace shop, workload web (the app sandboxes its workers)", "token:test-admin"),
    ]  # fmt: skip


def test_admins_set_a_rule_severity_viewers_cannot(running) -> None:
    svc, image, cluster_id, credential, pod, cid, entry = running
    rules = {r["id"]: r for r in svc.get("/api/v1/runtime/rules").json()["items"]}
    assert (rules["ptrace-attach"]["severity"], rules["ptrace-attach"]["mitre"]) == ("high", "T1055.008")
    assert rules["exec-from-temp-dir"]["mitre"] == "T1105" and len(rules) == 17
    url = f"{svc.url}/api/v1/runtime/rules/ptrace-attach"
    viewer = svc.token("viewer", "v")
    denied = httpx.put(url, json={"severity": "critical"}, headers={"Authorization": f"Bearer {viewer}"})
    assert denied.status_code == 403
    admin = {"Authorization": f"Bearer {svc.admin_token}"}
    bad = httpx.put(url, json={"severity": "info"}, headers=admin)
    assert bad.status_code == 422
    unknown = httpx.put(f"{svc.url}/api/v1/runtime/rules/ptrace", json={"severity": "low"}, headers=admin)
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("rule 'ptrace' is not one of ")
    changed = httpx.put(url, json={"severity": "critical"}, headers=admin)
    assert changed.status_code == 200, changed.text
    got = changed.json()
    assert (got["severity"], got["default_severity"], got["updated_by"]) == ("critical", "high", "token:test-admin")
    post(
        svc,
        credential,
        batch(
            cluster_id,
            [entry],
            [activity(cid, pod, "ptrace", "pid:7 comm:x", proc(201, 200, "gdb", ["gdb"], ["sh"], 3))],
        ),
    )
    (f,) = settle(svc, cluster_id, 1)
    assert (f["type"], f["severity"], f["evidence"]["rule"]["severity"]) == ("ptrace_attach", "critical", "critical")
    assert [h["change"] for h in svc.get("/api/v1/runtime/rules/history", rule="ptrace-attach").json()["items"]] == [
        "severity high -> critical"
    ]
    # Back to its default: the setting is gone, the history keeps both.
    assert httpx.put(url, json={"severity": "high"}, headers=admin).json()["updated_by"] is None
    assert len(svc.get("/api/v1/runtime/rules/history").json()["items"]) == 2


def test_activities_of_an_unknown_container_wait_for_the_inventory(running) -> None:
    svc, image, cluster_id, credential, pod, cid, entry = running
    other_pod, other = str(uuid.uuid4()), uuid.uuid4().hex * 2
    shadow = activity(other, other_pod, "file_read", "/etc/shadow", proc(5, 4, "cat", ["cat", "/etc/shadow"], [], 3))
    post(svc, credential, batch(cluster_id, [], [shadow]))
    svc.app.state.workers.runtime.run_pass()
    status = svc.get("/api/v1/runtime/status").json()
    assert status["pending_activities"] == {
        "waiting_for_inventory": 1,
        "waiting_for_scan": 0,
        "scan_failed": 0,
        "ready": 0,
    }
    assert findings(svc, cluster_id) == []


def test_activity_findings_resolve_when_the_workload_stops(running) -> None:
    svc, image, cluster_id, credential, pod, cid, entry = running
    shadow = activity(cid, pod, "file_read", "/etc/shadow", proc(201, 200, "cat", ["cat", "/etc/shadow"], ["sh"], 3))
    post(svc, credential, batch(cluster_id, [entry], [shadow]))
    (f,) = settle(svc, cluster_id, 1)
    # The controller's next snapshot has no pod any more: the finding resolves, as every runtime finding does.
    post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[]))
    svc.app.state.workers.runtime.run_pass(labels_now=True)
    got = svc.get(f"/api/v1/findings/{f['id']}").json()
    assert (got["status"], got["status_reason"]) == ("resolved", "the workload no longer runs this image")
