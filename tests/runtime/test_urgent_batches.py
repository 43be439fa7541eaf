"""The sensor's window closes early for a record that is likely a finding: a drift exec reaches the
service at once under a long --batch-interval, while a run of an image binary waits for the window.
Real parts: a loopback docker-registry, containerd + runc, `vigil sensor` with its eBPF programs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_e2e import (
    BUSYBOX,
    e2e_unavailable,
    exec_in,
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
    web_pod,
)

_skip = e2e_unavailable()
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
NODE = "node-urgent"
WINDOW_S = 15.0  # the sensor's --batch-interval: far longer than an early batch takes
EARLY_BOUND_S = 5.0


def recorded(svc, cluster_id: str, path: str) -> bool:
    return any(p["path"] == path for p in svc.list_all("/api/v1/processes", cluster=cluster_id))


def test_a_drift_exec_is_shipped_at_once_and_an_image_binary_waits_for_the_window(
    registry, containerd, tmp_path: Path
) -> None:
    image = push_image(registry, tag="urgent")
    containerd.ctr("images", "pull", "--plain-http", image.ref, timeout=120)
    svc = runtime_service(tmp_path / "data", registry)
    try:
        cluster_id, credential = svc.register("urgent")
        pod, cid = new_container_ids()
        post_inventory(svc, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)]))
        scan_and_match(svc)
        sensor = start_sensor(svc, credential, cluster_id, NODE, tmp_path / "sensor", batch_interval=WINDOW_S)
        try:
            init = run_container(containerd, image, pod, cid)
            wait_for_cmdline(init, ["/bin/sleep", "300"])
            # runc's own start (its init re-executed from a memfd) closed a window early just now; the
            # next early close is at most one a second.
            time.sleep(1.5)

            put_file(init, "/app/true", BUSYBOX.read_bytes() + b"\0urgent")
            ran = time.monotonic()
            assert exec_in(containerd, cid, "drift", "/app/true").returncode == 0
            wait_for(
                "the drift finding",
                lambda: any(f["type"] == "runtime_drift" for f in runtime_findings(svc, cluster_id)),
                timeout=2 * WINDOW_S,
                every=0.05,
            )
            took = time.monotonic() - ran
            print(f"drift exec to its finding: {took:.2f} s under --batch-interval {WINDOW_S:g}")
            assert took < EARLY_BOUND_S

            # An image binary (the lower layer) is no finding: it goes out when the window ends.
            assert exec_in(containerd, cid, "ls", "/bin/ls", "/app").returncode == 0
            ls_ran = time.monotonic()
            time.sleep(EARLY_BOUND_S - 1.0)
            assert not recorded(svc, cluster_id, "/bin/ls")
            wait_for("the ls record", lambda: recorded(svc, cluster_id, "/bin/ls"), timeout=2 * WINDOW_S)
            waited = time.monotonic() - ls_ran
            print(f"image binary to its record: {waited:.2f} s")
            assert EARLY_BOUND_S - 1.0 <= waited <= WINDOW_S + EARLY_BOUND_S
        finally:
            rc = sensor.stop()
            remove_container(containerd, cid, pod)
        assert rc == 0, sensor.log()[-3000:]
        assert [(f["type"], f["evidence"]["path"]) for f in runtime_findings(svc, cluster_id)] == [
            ("runtime_drift", "/app/true")
        ]
    finally:
        svc.stop()
