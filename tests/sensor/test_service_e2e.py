"""`vigil sensor` against the real service: a container from an image pushed to a loopback registry
and pulled by containerd, under a kubelet-style cgroup; the service's processes API must hold exactly
what executed inside it (and in `ctr task exec` sessions), joined to its pod and workload, and
nothing from the host."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sensor_e2e import (
    SensorProcess,
    inventory_snapshot,
    new_container_ids,
    node_sensor,
    post_inventory,
    processes,
    remove_container,
    run_container,
    sha256_hex,
    wait_for,
    wait_for_cmdline,
    web_pod,
)

from conftest import e2e_unavailable

_skip = e2e_unavailable()
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
NODE = "node-e2e-1"


def test_service_holds_exactly_the_container_executions_with_pod_and_workload(
    live_service, containerd_pulled, pushed_image, tmp_path: Path
) -> None:
    ctd, image = containerd_pulled, pushed_image
    cluster_id, credential = live_service.register("e2e")
    pod, cid = new_container_ids()
    post_inventory(
        live_service, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)])
    )

    sensor = SensorProcess.start(
        live_service.url, credential, cluster_id, NODE, tmp_path / "sensor", "--batch-interval", "60"
    )
    try:
        beat = wait_for(
            "the sensor's first heartbeat",
            lambda: (node_sensor(live_service, cluster_id, NODE) or {}).get("last_heartbeat_at"),
        )
        assert beat, sensor.log()
        # Host processes while host tracing is off: the service must never hear of them.
        subprocess.run(["/bin/true", "host-noise"], check=True)
        init_pid = run_container(ctd, image, pod, cid)
        wait_for_cmdline(init_pid, ["/bin/sleep", "300"])
        assert "run.sh" in ctd.ctr("task", "exec", "--exec-id", "ls", cid, "/bin/ls", "/app").stdout
        assert (
            ctd.ctr("task", "exec", "--exec-id", "cat", cid, "/bin/cat", "/proc/1/cmdline").stdout
            == "/bin/sleep\x00300\x00"
        )
        ctd.ctr("task", "exec", "--exec-id", "sh", cid, "/bin/sh", "-c", "/bin/true")
        subprocess.run(["/bin/sh", "-c", "/bin/true more-host-noise"], check=True)
    finally:
        rc = sensor.stop()  # SIGTERM: the sensor drains, closes its window and ships before leaving
        remove_container(ctd, cid, pod)
    assert rc == 0, sensor.log()[-3000:]
    assert "Traceback" not in sensor.log()

    ref = f"containerd://{cid}"
    everything = processes(live_service, cluster_id)
    # The node may run other containers (other tests, other users): the sensor reports them too,
    # rightly. Nothing may come from the host, and this container's records must be exact.
    assert [p for p in everything if p["container_id"] is None or p["pod_uid"] is None] == []
    items = processes(live_service, cluster_id, container_id=ref)
    assert items == [p for p in everything if p["container_id"] == ref]
    busybox, script = image.sha256("/bin/busybox"), image.sha256("/app/run.sh")
    got = sorted((p["container_id"], p["pod_uid"], p["kind"], p["path"], p["sha256"], p["count"]) for p in items)
    assert got == sorted(
        [
            (ref, pod, "executable", "/bin/cat", busybox, 1),
            (ref, pod, "executable", "/bin/echo", busybox, 1),
            (ref, pod, "executable", "/bin/ls", busybox, 1),
            (ref, pod, "executable", "/bin/sh", busybox, 2),  # the #! interpreter of run.sh, then `ctr task exec sh`
            (ref, pod, "executable", "/bin/sleep", busybox, 1),
            (ref, pod, "executable", "/bin/true", busybox, 1),
            (ref, pod, "script", "/app/run.sh", script, 1),
        ]
    )
    assert script == sha256_hex(b"#!/bin/sh\n/bin/echo started\nexec /bin/sleep 300\n")
    argv = {(p["kind"], p["path"]): [s["argv"] for s in p["samples"]] for p in items}
    assert argv == {
        ("executable", "/bin/cat"): [["/bin/cat", "/proc/1/cmdline"]],
        ("executable", "/bin/echo"): [["/bin/echo", "started"]],
        ("executable", "/bin/ls"): [["/bin/ls", "/app"]],
        ("executable", "/bin/sh"): [["/bin/sh", "/app/run.sh"], ["/bin/sh", "-c", "/bin/true"]],
        ("executable", "/bin/sleep"): [["/bin/sleep", "300"]],
        ("executable", "/bin/true"): [["/bin/true"]],
        ("script", "/app/run.sh"): [["/bin/sh", "/app/run.sh"]],
    }
    script_sample = next(p for p in items if p["kind"] == "script")["samples"][0]
    assert (script_sample["filename"], script_sample["interpreter"]) == ("/app/run.sh", "/bin/sh")
    sleep_sample = next(p for p in items if p["path"] == "/bin/sleep")["samples"][0]
    assert sleep_sample["pid"] == init_pid and sleep_sample["uid"] == 0  # `exec` keeps the pid
    # The service joined each record to the inventory: pod, workload, container and image.
    for p in items:
        assert p["node_name"] == NODE
        assert p["pod"] == {"namespace": "shop", "name": "web-7d4b9c-x2v8q"}
        assert p["workload"] == {"kind": "Deployment", "name": "web"}
        assert p["container"] == {"name": "app", "image": image.ref, "image_digest": image.digest}

    node = node_sensor(live_service, cluster_id, NODE)
    assert node["status"] == "monitored_with_sensor" and node["reported_status"] == "running"
    assert node["events_lost"] == 0 and node["batches_dropped"] == 0 and node["btf"] is True


def test_cli_sensor_stops_itself_on_a_node_labelled_disabled(live_service, tmp_path: Path) -> None:
    cluster_id, credential = live_service.register("e2e-disabled")
    node = "node-off"
    post_inventory(
        live_service, credential, inventory_snapshot(cluster_id, node, node_labels={"vigil.dev/sensor": "disabled"})
    )
    sensor = SensorProcess.start(
        live_service.url, credential, cluster_id, node, tmp_path / "sensor", "--duration", "60"
    )
    try:
        rc = sensor.proc.wait(timeout=30)
    finally:
        sensor.stop()
    assert rc == 0
    assert "vigil sensor: stopped: node is labelled vigil.dev/sensor=disabled" in sensor.log()
    status = node_sensor(live_service, cluster_id, node)
    assert status["status"] == "disabled"
    assert status["reported_status"] == "disabled"
    assert processes(live_service, cluster_id) == []


def test_cli_sensor_enrols_its_node_once_and_keeps_the_credential_0600(live_service, tmp_path: Path) -> None:
    cluster_id, credential = live_service.register("e2e-enrol")
    node = "node-enrol"
    post_inventory(
        live_service, credential, inventory_snapshot(cluster_id, node, node_labels={"vigil.dev/sensor": "disabled"})
    )
    resp = httpx.post(
        f"{live_service.url}/api/v1/clusters/{cluster_id}/sensor-enrolment",
        json={},
        headers={"Authorization": f"Bearer {live_service.admin_token}"},
    )
    assert resp.status_code == 200, resp.text
    enrolment = resp.json()["credential"]
    # Run twice on the same spool: the second run reuses the kept credential instead of enrolling again.
    for _ in range(2):
        sensor = SensorProcess.start(
            live_service.url,
            enrolment,
            cluster_id,
            node,
            tmp_path / "sensor",
            "--duration",
            "60",
            credential_flag="--enrolment-credential-file",
        )
        try:
            rc = sensor.proc.wait(timeout=30)
        finally:
            sensor.stop()
        assert rc == 0, sensor.log()
        assert "vigil sensor: stopped: node is labelled vigil.dev/sensor=disabled" in sensor.log()
    kept = tmp_path / "sensor" / "spool" / "sensor-credential.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    doc = json.loads(kept.read_text())
    assert (doc["cluster_id"], doc["node"]) == (cluster_id, node) and doc["credential"].startswith("vgl_s_")
    listed = live_service.get(f"/api/v1/clusters/{cluster_id}/credentials").json()["items"]
    assert [(c["id"], c["node"], c["state"]) for c in listed if c["kind"] == "sensor"] == [(doc["id"], node, "active")]
    assert doc["credential"] not in sensor.log() and enrolment not in sensor.log()
    assert node_sensor(live_service, cluster_id, node)["reported_status"] == "disabled"
