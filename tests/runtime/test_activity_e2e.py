# ruff: noqa: E501  (the actions and findings are tables: one a line)
"""File and kernel activity end to end, on real parts: an image pushed to a loopback docker-registry and
scanned by the real scanner, a container run by containerd + runc under a kubelet-style cgroup, the real
`vigil sensor` shipping its activities to the service, whose activity rules give exactly one finding per
action, with the process, its parents, the container, pod and workload."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_e2e import (
    e2e_unavailable,
    exec_in,
    inventory_snapshot,
    new_container_ids,
    post_inventory,
    push_image,
    put_file,
    remove_container,
    run_container,
    runtime_service,
    scan_and_match,
    start_sensor,
    wait_for,
    wait_for_cmdline,
    web_pod,
)

# The static ptrace and memfd helpers are built (gcc, cached) by the sensor's activity tests; runtime_e2e put
# their folder on the path.
from test_activity_containers import MEMFD_HELPER, PTRACE_HELPER, _static_helper  # noqa: E402

_skip = e2e_unavailable()
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
NODE = "node-act-1"
SA = "/var/run/secrets/kubernetes.io/serviceaccount"
PASSWD = b"root:x:0:0::/root:/bin/sh\n"
SHADOW = b"root:*:1:0:99999:7:::\n"
REPORT = b"#!/bin/sh\necho report\n"  # a binary of the image that the container overwrites
# Each action through an exec session (ctr task exec, as kubectl exec): (exec id, argv).
ACTIONS = [
    ("drop", "/bin/sh", "-c", "/bin/busybox mkdir -p /usr/local/bin && /bin/busybox cp /bin/busybox /usr/local/bin/tool && /bin/busybox chmod +x /usr/local/bin/tool"),
    ("passwd", "/bin/sh", "-c", "echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd"),
    ("binary", "/bin/sh", "-c", "echo 'exit 0' > /usr/bin/report"),
    ("shadow", "/bin/cat", "/etc/shadow"),
    ("token", "/bin/cat", SA + "/token"),
    ("core", "/bin/sh", "-c", "echo '|/tmp/x' > /proc/sys/kernel/core_pattern"),
    ("unshare", "/bin/busybox", "unshare", "-m", "/bin/true"),
    ("ptrace", "/helpers/ptracer"),
    ("memfd", "/helpers/memfdexec", "/bin/busybox"),
]  # fmt: skip
EXPECTED = [
    ("container_escape_attempt", "critical", "T1611", "kernel-control-write: /proc/sys/kernel/core_pattern"),
    ("container_escape_attempt", "critical", "T1611", "namespace-change: CLONE_NEWNS"),
    ("file_tampering", "high", "T1098", "account-file-modified: /etc/passwd"),
    ("file_tampering", "high", "T1105", "executable-dropped: /usr/local/bin/tool"),
    ("file_tampering", "high", "T1554", "image-file-modified: /usr/bin/report"),
    ("ptrace_attach", "high", "T1055.008", "ptrace-attach: pid:N comm:ptracer"),
    ("sensitive_file_read", "high", "T1003.008", "credential-file-read: /etc/shadow"),
    ("sensitive_file_read", "high", "T1528", f"service-account-token-read: {SA}/token"),
    ("suspicious_exec", "high", "T1620", "exec-from-memfd-or-deleted: /memfd:vigil-test (deleted)"),
    ("suspicious_exec", "medium", "T1609", "shell-in-exec-session: /bin/sh"),
]  # fmt: skip
ACTIVITY_TYPES = (
    "file_tampering,sensitive_file_read,container_escape_attempt,ptrace_attach,kernel_activity,suspicious_exec"
)


def summary(found: list[dict]) -> list[tuple]:
    # Suspicious-exec findings carry the MITRE id in their rule; the attached pid varies from run to run.
    return sorted(
        (
            f["type"],
            f["severity"],
            f["evidence"].get("mitre") or f["evidence"]["rule"]["mitre"],
            re.sub(r"pid:\d+ ", "pid:N ", f["subject"]),
        )
        for f in found
    )


def test_activities_in_a_real_container_give_their_findings(registry, containerd, tmp_path: Path) -> None:
    helpers = {
        "/helpers/ptracer": _static_helper("ptracer", PTRACE_HELPER).read_bytes(),
        "/helpers/memfdexec": _static_helper("memfdexec", MEMFD_HELPER).read_bytes(),
    }
    image = push_image(
        registry,
        tag="activity",
        extra={"/etc/passwd": PASSWD, "/etc/shadow": SHADOW, "/usr/bin/report": REPORT, **helpers},
    )
    containerd.ctr("images", "pull", "--plain-http", image.ref, timeout=120)
    svc = runtime_service(tmp_path / "data", registry)
    try:
        cluster_id, credential = svc.register("act-e2e")
        pod, cid = new_container_ids()
        post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
        scan_and_match(svc)
        sensor = start_sensor(svc, credential, cluster_id, NODE, tmp_path / "sensor")
        try:
            init = run_container(containerd, image, pod, cid)
            wait_for_cmdline(init, ["/bin/sleep", "300"])
            put_file(init, SA + "/token", b"eyJhbGciOi.token", mode=0o644)  # from the host: not traced
            for exec_id, *argv in ACTIONS:
                exec_in(containerd, cid, exec_id, *argv)

            def settled():
                found = svc.list_all("/api/v1/findings", cluster=cluster_id, type=ACTIVITY_TYPES)
                return found if len(found) >= len(EXPECTED) else None

            found = wait_for("the activity findings", settled, 30)
        finally:
            rc = sensor.stop()
            remove_container(containerd, cid, pod)
        assert rc == 0, sensor.log()[-3000:]
        svc.app.state.workers.runtime.run_pass()
        found = svc.list_all("/api/v1/findings", cluster=cluster_id, type=ACTIVITY_TYPES)
        assert summary(found) == EXPECTED, [f["evidence"].get("activity") for f in found]

        (token,) = [f for f in found if f["type"] == "sensitive_file_read" and "token" in f["subject"]]
        proc = token["evidence"]["process"]
        # The cat is gone before its open is decoded: its executable and argv come from its exec, decoded
        # first from the same ring buffer; entered from outside (ctr task exec), it has no parent inside.
        assert (proc["path"], proc["argv"], proc["parents"]) == ("/bin/cat", ["/bin/cat", SA + "/token"], [])
        assert proc["comm"] == "cat" and token["evidence"]["reason"].endswith(
            "(cat), which is not the container's entry point nor started by it"
        )
        assert proc["container"]["id"] == f"containerd://{cid}" and proc["container"]["pod"] == "web-7d4b9c-x2v8q"
        assert token["evidence"]["workload"] == {"namespace": "shop", "kind": "Deployment", "name": "web"}
        (passwd,) = [f for f in found if "/etc/passwd" in f["subject"]]
        assert passwd["evidence"]["process"]["comm"] == "sh"  # the shell's own redirection
        (dropped,) = [f for f in found if "/usr/local/bin/tool" in f["subject"]]
        # The shell's last command replaces it (no fork): chmod's parent is the shim, outside the container.
        assert dropped["evidence"]["process"]["argv"] == ["/bin/busybox", "chmod", "+x", "/usr/local/bin/tool"]
        assert dropped["evidence"]["process"]["parents"] == []
        assert passwd["evidence"]["activity"]["upper_layer"] is True
    finally:
        svc.stop()
