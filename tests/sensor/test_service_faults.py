"""The sensor against the real service when things go wrong: the service is down for a while and comes
back on the same data and port; the spool bound is exceeded during an outage."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sensor_e2e import (
    inventory_snapshot,
    new_container_ids,
    node_sensor,
    post_inventory,
    processes,
    remove_container,
    restart_service,
    run_container,
    wait_for,
    wait_for_cmdline,
    web_pod,
)

from conftest import e2e_unavailable
from vigil.sensor.agent import AgentSettings, SensorAgent
from vigil.sensor.cgroups import CgroupResolver
from vigil.sensor.hashing import FileHasher
from vigil.sensor.loader import ProcessTracer
from vigil.sensor.pipeline import EventPipeline
from vigil.sensor.shipper import Shipper
from vigil.sensor.spool import Spool

_skip = e2e_unavailable()
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
NODE = "node-faults-1"


def _counts(svc, cluster_id: str, cid: str) -> dict[tuple[str, str], int]:
    """Counts of one container's records (the node may run other containers, reported too)."""
    return {(p["kind"], p["path"]): p["count"] for p in processes(svc, cluster_id, container_id=f"containerd://{cid}")}


def test_outage_then_restart_delivers_every_record_once(
    live_service, containerd_pulled, pushed_image, tmp_path: Path
) -> None:
    ctd, image = containerd_pulled, pushed_image
    cluster_id, credential = live_service.register("faults-outage")
    pod, cid = new_container_ids()
    post_inventory(
        live_service, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)])
    )
    spool = Spool(tmp_path / "spool")
    shipper = Shipper(live_service.url, credential, spool, backoff_max_s=0.5)
    restarted = None
    stop = threading.Event()
    with ProcessTracer() as tracer:
        pipeline = EventPipeline(CgroupResolver(), FileHasher(), skip_cgroup=tracer.skip_cgroup)
        agent = SensorAgent(
            AgentSettings(
                cluster_id=cluster_id, node_name=NODE, batch_interval_s=0.4, heartbeat_interval_s=1, poll_timeout_ms=50
            ),
            tracer,
            pipeline,
            spool=spool,
            shipper=shipper,
        )
        runner = threading.Thread(target=agent.run, args=(stop,))
        runner.start()
        try:
            init_pid = run_container(ctd, image, pod, cid)
            wait_for_cmdline(init_pid, ["/bin/sleep", "300"])
            ctd.ctr("task", "exec", "--exec-id", "before", cid, "/bin/true")
            wait_for(
                "the first records at the service",
                lambda: _counts(live_service, cluster_id, cid).get(("executable", "/bin/true")) == 1,
            )

            live_service.stop()
            for i in range(6):
                ctd.ctr("task", "exec", "--exec-id", f"down{i}", cid, "/bin/sh", "-c", "/bin/true; /bin/true")
                stop.wait(0.25)
            # The outage spans several batch windows: they wait on disk, in order.
            wait_for("batches spooled during the outage", lambda: len(spool) >= 3)
            replay = tmp_path / "replay.json"
            shutil.copy(spool.entries()[0].path, replay)

            restarted = restart_service(live_service).start()
            wait_for("the spool to drain into the restarted service", lambda: len(spool) == 0, timeout=30)
            ctd.ctr("task", "exec", "--exec-id", "after", cid, "/bin/true")
        finally:
            stop.set()
            runner.join(30)
            shipper.close()
            remove_container(ctd, cid, pod)
    assert not runner.is_alive()
    try:
        svc = restarted
        assert svc is not None
        want = {
            ("executable", "/bin/sh"): 1 + 6,  # run.sh's interpreter, then each `sh -c`
            ("script", "/app/run.sh"): 1,
            ("executable", "/bin/echo"): 1,
            ("executable", "/bin/sleep"): 1,
            ("executable", "/bin/true"): 1 + 12 + 1,
        }
        assert _counts(svc, cluster_id, cid) == want
        # A batch retried after the service had applied it (a lost acknowledgement) is applied once.
        body = json.loads(replay.read_text())
        resp = httpx.post(
            f"{svc.url}/api/v1/ingest/runtime", json=body, headers={"Authorization": f"Bearer {credential}"}
        )
        assert (
            resp.status_code == 200 and resp.json()["applied"] is False and resp.json()["batch_id"] == body["batch_id"]
        )
        assert _counts(svc, cluster_id, cid) == want
        beat = node_sensor(svc, cluster_id, NODE)
        assert beat["batches_dropped"] == 0 and beat["events_lost"] == 0
        assert shipper.rejected == 0
    finally:
        if restarted is not None:
            restarted.stop()


def test_spool_bound_exceeded_drops_oldest_and_the_service_is_told(
    live_service, containerd_pulled, pushed_image, tmp_path: Path
) -> None:
    ctd, image = containerd_pulled, pushed_image
    cluster_id, credential = live_service.register("faults-bound")
    pod, cid = new_container_ids()
    post_inventory(
        live_service, credential, inventory_snapshot(cluster_id, NODE, pods=[web_pod(pod, NODE, cid, image)])
    )
    spool = Spool(tmp_path / "spool", max_batches=2)
    shipper = Shipper(live_service.url, credential, spool, backoff_max_s=0.2)
    lines: list[str] = []
    restarted = None

    def one_window(exec_id: str, *argv: str) -> int:
        """Run argv in the container, drain until the sensor saw it, close the window into a batch.

        Returns the batch's record count (other containers on the node may add records)."""
        before = len(lines)
        ctd.ctr("task", "exec", "--exec-id", exec_id, cid, *argv)
        wait_for(
            f"exec {argv}",
            lambda: agent.step(50) >= 0 and any(json.loads(x)["argv"] == list(argv) for x in lines[before:]),
        )
        batch = agent.flush_batch()
        assert batch is not None
        return len(batch.records)

    with ProcessTracer() as tracer:
        pipeline = EventPipeline(CgroupResolver(), FileHasher(), skip_cgroup=tracer.skip_cgroup)
        agent = SensorAgent(
            AgentSettings(cluster_id=cluster_id, node_name=NODE),
            tracer,
            pipeline,
            spool=spool,
            shipper=shipper,
            emit=lambda line: lines.append(line) if '"exec"' in line else None,
        )
        try:
            init_pid = run_container(ctd, image, pod, cid, "/bin/sleep", "300")
            wait_for("the container's sleep", lambda: agent.step(50) >= 0 and any('"/bin/sleep"' in x for x in lines))
            agent.flush_batch()
            assert shipper.ship().delivered == 1
            live_service.stop()
            sizes = []
            for i in range(5):
                sizes.append(one_window(f"down{i}", "/bin/true", f"window-{i}"))
                assert shipper.ship(force=True).error is not None  # the service is down: kept in the spool
            # Five batches for a bound of two: the three oldest are gone, and counted.
            assert len(spool) == 2 and spool.dropped_batches == 3 and spool.dropped_records == sum(sizes[:3])
            ref = f"containerd://{cid}"
            kept = [
                r["samples"][0]["argv"]
                for e in spool.entries()
                for r in json.loads(e.path.read_text())["records"]
                if r["container_id"] == ref
            ]
            assert kept == [["/bin/true", "window-3"], ["/bin/true", "window-4"]]

            restarted = restart_service(live_service).start()
            assert shipper.ship(force=True).delivered == 2
            assert shipper.heartbeat(agent.heartbeat()) == {"status": "ok", "sensor_disabled": False}
            one_window("after", "/bin/true", "after")  # still working after the drops
            assert shipper.ship(force=True).delivered == 1
            assert init_pid > 0
        finally:
            shipper.close()
            remove_container(ctd, cid, pod)
    try:
        svc = restarted
        assert svc is not None
        sensor = node_sensor(svc, cluster_id, NODE)
        assert sensor["batches_dropped"] == 3 and sensor["batches_spooled"] == 0
        assert sensor["status"] == "monitored_with_sensor"
        items = {(p["kind"], p["path"]): p for p in processes(svc, cluster_id, container_id=f"containerd://{cid}")}
        assert {k: v["count"] for k, v in items.items()} == {
            ("executable", "/bin/sleep"): 1,
            ("executable", "/bin/true"): 3,
        }
        assert [s["argv"] for s in items[("executable", "/bin/true")]["samples"]] == [
            ["/bin/true", "window-3"],
            ["/bin/true", "window-4"],
            ["/bin/true", "after"],
        ]
    finally:
        if restarted is not None:
            restarted.stop()
