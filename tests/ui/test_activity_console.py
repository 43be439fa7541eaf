# ruff: noqa: E501  (the seeded activities are a table: one a line)
"""The console's process view of one container (what it executed, wrote, read of the watched paths, and its
kernel operations: one section each) and the runtime rules page, where admins set a rule's severity and
its allow-list, with history, and viewers only look (HTTP against a live service)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from vigil.devtools.service import LiveService
from vigil.service.store import runtime_analysis
from vigil.service.ui import evidence

from .test_admission_console import cells, csrf, signed_in, text_of

NODE = "node-a"
T = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).isoformat()
DIGEST = "sha256:" + "d4" * 32
BUSYBOX_SHA = "e5" * 32


def sample(pid: int, comm: str, exe: str, argv: list[str], parents: list[str]) -> dict:
    return {"time": T, "pid": pid, "ppid": 200, "uid": 0, "comm": comm, "exe": exe, "argv": argv, "parents": parents}


def act(cid: str, pod: str, kind: str, target: str, s: dict, detail: dict | None = None, upper=None) -> dict:
    return {
        "container_id": cid,
        "pod_uid": pod,
        "kind": kind,
        "target": target,
        "upper_layer": upper,
        "detail": detail or {},
        "first_seen": T,
        "last_seen": T,
        "count": 3,
        "samples": [s],
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    svc = LiveService(tmp_path_factory.mktemp("act-ui") / "data").start()
    cluster_id, credential = svc.register("act-ui")
    pod, cid = str(uuid.uuid4()), "containerd://" + uuid.uuid4().hex * 2
    auth = {"Authorization": f"Bearer {credential}"}
    snapshot = {
        "kind": "snapshot",
        "batch_id": f"inv-{uuid.uuid4().hex[:12]}",
        "cluster_id": cluster_id,
        "nodes": [{"name": NODE}],
        "workloads": [{"namespace": "shop", "kind": "Deployment", "name": "web"}],
        "pods": [
            {
                "uid": pod,
                "namespace": "shop",
                "name": "web-1",
                "node_name": NODE,
                "phase": "Running",
                "workload": {"kind": "Deployment", "name": "web"},
                "containers": [
                    {
                        "name": "app",
                        "image": "registry.example.com/shop/web:1",
                        "image_digest": DIGEST,
                        "container_id": cid,
                        "state": "running",
                    }
                ],
            }
        ],
    }
    resp = httpx.post(f"{svc.url}/api/v1/ingest/inventory", json=snapshot, headers=auth, timeout=30)
    assert resp.status_code == 200, resp.text
    bb, sh = "/bin/busybox", ["sh"]
    batch = {
        "batch_id": f"rt-{uuid.uuid4().hex[:16]}",
        "cluster_id": cluster_id,
        "node_name": NODE,
        "sensor_id": "s1",
        "seq": 0,
        "window_start": T,
        "window_end": T,
        "records": [
            {
                "container_id": cid,
                "pod_uid": pod,
                "kind": "executable",
                "path": "/bin/sh",
                "sha256": BUSYBOX_SHA,
                "first_seen": T,
                "last_seen": T,
                "count": 1,
                "samples": [{"time": T, "pid": 200, "ppid": 1, "uid": 0, "gid": 0, "filename": "/bin/sh", "argv": sh}],
            }
        ],
        "activities": [
            act(cid, pod, "file_write", "/usr/local/bin/tool", sample(201, "cp", bb, ["cp", "t", "/usr/local/bin/tool"], sh), upper=True),
            act(cid, pod, "file_chmod", "/usr/local/bin/tool", sample(202, "chmod", bb, ["chmod", "+x", "tool"], sh), {"mode": "0755"}),
            act(cid, pod, "file_read", "/etc/shadow", sample(203, "cat", bb, ["cat", "/etc/shadow"], sh)),
            act(cid, pod, "ptrace", "pid:4242 comm:sleep", sample(204, "gdb", "/usr/bin/gdb", ["gdb", "-p", "4242"], ["sh", "runc"])),
            act(cid, pod, "unshare", "unshare", sample(205, "unshare", bb, ["unshare", "-m"], sh), {"flags": "CLONE_NEWNS"}),
        ],
    }  # fmt: skip
    resp = httpx.post(f"{svc.url}/api/v1/ingest/runtime", json=batch, headers=auth, timeout=30)
    assert resp.status_code == 200, resp.text
    admin, viewer = signed_in(svc, svc.admin_token), signed_in(svc, svc.token("viewer", "test-viewer"))
    yield svc, cluster_id, cid, admin, viewer
    admin.close()
    viewer.close()
    svc.stop()


def sections(html: str) -> list[str]:
    return re.findall(r'<section class="panel activity-section" id="section-(\w+)"', html)


def test_the_process_view_of_a_container_has_a_section_per_activity(world) -> None:
    svc, cluster_id, cid, admin, viewer = world
    page = viewer.get("/processes/container", params={"cluster": cluster_id, "id": cid})
    assert page.status_code == 200
    html = page.text
    assert sections(html) == ["executed", "written", "read", "loaded", "kernel"]
    assert text_of(html, "container-id") == cid
    section = {k: html.split(f'id="section-{k}"', 1)[1].split("</section>", 1)[0] for k in sections(html)}
    assert "/bin/sh" in section["executed"] and BUSYBOX_SHA[:12] in section["executed"]
    written = [r.split('"')[0] for r in section["written"].split('data-kind="')[1:]]
    assert written == ["file_write", "file_chmod"]
    assert "mode=0755" in section["written"] and "upper layer" in section["written"]
    assert 'data-target="/etc/shadow"' in section["read"] and "cat /etc/shadow" in section["read"]
    assert [r.split('"')[0] for r in section["kernel"].split('data-kind="')[1:]] == ["ptrace", "unshare"]
    assert "None recorded." in section["loaded"]  # no package_load in this batch
    assert "sh ← runc" in section["kernel"] and "flags=CLONE_NEWNS" in section["kernel"]
    assert "/workloads/" in html and "shop/Deployment/web" in html

    empty = viewer.get("/processes/container", params={"cluster": cluster_id, "id": "containerd://" + "0" * 64})
    assert sections(empty.text) == ["executed", "written", "read", "loaded", "kernel"]
    assert empty.text.count("None recorded.") == 4 and "Nothing executed was recorded." in empty.text
    chooser = viewer.get("/processes/container", params={"cluster": cluster_id})
    assert chooser.status_code == 200 and sections(chooser.text) == []
    assert text_of(chooser.text, "choose-container").startswith("Name a container to see what it executed")


def test_admins_edit_a_rule_severity_and_allow_list_with_history_viewers_get_403(world) -> None:
    svc, cluster_id, cid, admin, viewer = world
    page = viewer.get("/settings/runtime-rules")
    assert page.status_code == 200
    rows = {r[0]: r for r in cells(page.text, "rules-table")}
    assert len(rows) == 17
    assert rows["ptrace-attach"][1:4] == ["ptrace_attach", "T1055.008", "high"]
    assert rows["kernel-control-write"][1:4] == ["container_escape_attempt", "T1611", "critical"]
    assert 'action="/settings/runtime-rules/allow"' not in page.text  # viewers get no forms

    token = csrf(page.text)
    refused = viewer.post("/settings/runtime-rules/ptrace-attach/severity", data={"csrf": token, "severity": "low"})
    assert refused.status_code == 403
    assert (
        text_of(refused.text, "error-message")
        == "Signed in as test-viewer with role viewer: this needs an admin token."
    )
    refused = viewer.post(
        "/settings/runtime-rules/allow", data={"csrf": token, "rule": "ptrace-attach", "reason": "debuggers"}
    )
    assert refused.status_code == 403

    apage = admin.get("/settings/runtime-rules")
    token = csrf(apage.text)
    done = admin.post("/settings/runtime-rules/ptrace-attach/severity", data={"csrf": token, "severity": "critical"})
    assert done.status_code == 303 and done.headers["location"] == "/settings/runtime-rules#rules"
    bad = admin.post("/settings/runtime-rules/ptrace-attach/severity", data={"csrf": token, "severity": "info"})
    assert bad.status_code == 400
    assert text_of(bad.text, "rules-error") == "severity: 'info' is not one of critical, high, medium, low"
    typo = admin.post(
        "/settings/runtime-rules/allow", data={"csrf": token, "rule": "ptrace", "workload": "web", "reason": "gdb"}
    )
    assert typo.status_code == 400 and text_of(typo.text, "rules-error").startswith(
        "rule: rule 'ptrace' is not one of *, "
    )
    bad_labels = admin.post(
        "/settings/runtime-rules/allow",
        data={"csrf": token, "rule": "ptrace-attach", "labels": "app", "reason": "gdb"},
    )
    assert text_of(bad_labels.text, "rules-error") == "labels: 'app' is not key=value (pairs are separated by commas)"
    added = admin.post(
        "/settings/runtime-rules/allow",
        data={
            "csrf": token,
            "rule": "ptrace-attach",
            "namespace": "shop",
            "workload": "web",
            "labels": "app=web",
            "reason": "the profiler attaches to workers",
        },
    )
    assert added.status_code == 303
    with svc.engine.connect() as conn:
        (entry,) = runtime_analysis.list_allow(conn)
        assert runtime_analysis.severities(conn) == {"ptrace-attach": "critical"}
    assert (entry["rule"], entry["namespace"], entry["workload"], entry["labels"], entry["created_by"]) == (
        "ptrace-attach",
        "shop",
        "web",
        {"app": "web"},
        "console:test-admin",
    )

    after = viewer.get("/settings/runtime-rules").text
    (row,) = cells(after, "allow-table")
    assert row[:7] == [
        "ptrace-attach",
        "any",
        "shop",
        "web",
        "app=web",
        "the profiler attaches to workers",
        "console:test-admin",
    ]
    assert [r[1:] for r in cells(after, "history-table")] == [
        ["ptrace-attach", "allowed for namespace shop, workload web, label app=web (the profiler attaches to workers)", "console:test-admin"],
        ["ptrace-attach", "severity high -> critical", "console:test-admin"],
    ]  # fmt: skip
    assert "(default high; set by console:test-admin)" in after
    api = svc.get("/api/v1/runtime/rules").json()["items"]
    assert [r["severity"] for r in api if r["id"] == "ptrace-attach"] == ["critical"]

    removed = admin.post(f"/settings/runtime-rules/allow/{entry['id']}/remove", data={"csrf": token})
    assert removed.status_code == 303
    gone = admin.post(f"/settings/runtime-rules/allow/{entry['id']}/remove", data={"csrf": token})
    assert (
        gone.status_code == 404
        and text_of(gone.text, "rules-error") == f"allow-list entry {entry['id']} does not exist"
    )
    history = cells(viewer.get("/settings/runtime-rules").text, "history-table")
    assert history[0][1:] == [
        "ptrace-attach",
        f"allow-list entry {entry['id']} removed: namespace shop, workload web, label app=web "
        "(the profiler attaches to workers)",
        "console:test-admin",
    ]


def test_an_activity_finding_reads_as_rows_with_its_process_rule_and_container_link() -> None:
    finding = {
        "type": "sensitive_file_read",
        "cluster_id": "c1",
        "namespace": "shop",
        "workload": {"kind": "Deployment", "name": "web"},
        "evidence": {
            "path": "/etc/shadow",
            "activity": {"kind": "file_read", "target": "/etc/shadow", "detail": {}, "upper_layer": True, "count": 2},
            "process": {
                "path": None,
                "comm": "cat",
                "sha256": None,
                "argv": ["cat", "/etc/shadow"],
                "parent_chain": [{"pid": 5, "name": "sh"}],
                "container": {"id": "containerd://x", "name": "app", "pod": "web-1", "node": "n"},
            },
            "rule": {"id": "credential-file-read", "mitre_url": "https://attack.mitre.org/techniques/T1003/008/"},
            "mitre": "T1003.008",
            "reason": "read /etc/shadow, the password hashes",
        },
    }
    got = [(r.label, [(c.text, c.href) for c in r.cells]) for r in evidence.rows(finding)][1:]
    assert got == [
        ("activity", [("file_read", None)]),
        ("target", [("/etc/shadow", None)]),
        ("on the upper layer", [("yes", None)]),
        ("times seen", [("2", None)]),
        ("process", [("cat", None)]),  # the executable is unknown: its command name, never the target
        ("command line", [("cat /etc/shadow", None)]),
        ("parent chain", [("sh", None)]),
        ("pod", [("web-1", "/workloads/c1/shop/Deployment/web")]),
        ("container", [("app", "/processes/container?cluster=c1&id=containerd%3A%2F%2Fx")]),
        ("node", [("n", None)]),
        ("rule", [("credential-file-read", None)]),
        ("MITRE ATT&CK", [("T1003.008", "https://attack.mitre.org/techniques/T1003/008/")]),
        ("reason", [("read /etc/shadow, the password hashes", None)]),
    ]
