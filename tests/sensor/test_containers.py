"""Real containers (containerd + runc) under kubelet-style cgroups, traced and shipped end to end."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpf_support import bpf_unavailable
from containerd_harness import (
    IMAGE_NAME,
    busybox_sha256,
    missing_tools,
    start_containerd,
    write_busybox_image,
)
from ingest_server import IngestServer

from vigil.sensor.agent import AgentSettings, SensorAgent
from vigil.sensor.cgroups import CgroupResolver
from vigil.sensor.hashing import FileHasher
from vigil.sensor.loader import ProcessTracer
from vigil.sensor.pipeline import EventPipeline
from vigil.sensor.shipper import Shipper
from vigil.sensor.spool import Spool

_skip = bpf_unavailable() or (f"missing {', '.join(missing_tools())}" if missing_tools() else None)
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
TOKEN = "cluster-cred-1"


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    base = tmp_path_factory.mktemp("ctd")
    c = start_containerd(base / "c")
    c.ctr("images", "import", str(write_busybox_image(base)))
    yield c
    c.stop()


def _cleanup_pod_cgroups(pod_uid: str) -> None:
    for hier in Path("/sys/fs/cgroup").iterdir():
        for d in sorted(hier.glob(f"**/pod{pod_uid}"), key=lambda p: -len(p.parts)):
            for sub in d.iterdir():
                if sub.is_dir():
                    os.rmdir(sub)
            os.rmdir(d)


def test_container_execs_attributed_hashed_and_shipped(containerd, tmp_path: Path) -> None:
    server = IngestServer(token=TOKEN)
    spool = Spool(tmp_path / "spool")
    shipper = Shipper(server.url, TOKEN, spool)
    pod = str(uuid.uuid4())
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    with ProcessTracer(include_host=False) as tracer:
        pipeline = EventPipeline(CgroupResolver(), FileHasher(), skip_cgroup=tracer.skip_cgroup)
        lines: list[str] = []
        agent = SensorAgent(
            AgentSettings(cluster_id="c1", node_name="node-a", batch_interval_s=60, poll_timeout_ms=50),
            tracer,
            pipeline,
            spool=spool,
            shipper=shipper,
            emit=lines.append,
        )
        stop = threading.Event()
        runner = threading.Thread(target=agent.run, args=(stop,))
        runner.start()
        try:
            # Host activity while host tracing is off: must not reach the service.
            os.system("/bin/true host-noise")
            containerd.ctr(
                "run", "-d", "--cgroup", f"kubepods/besteffort/pod{pod}/{cid}", IMAGE_NAME, cid, "/bin/sleep", "30"
            )
            time.sleep(0.3)
            out = containerd.ctr("task", "exec", "--exec-id", "e1", cid, "/bin/ls", "/bin")
            assert "busybox" in out.stdout
            containerd.ctr("task", "exec", "--exec-id", "e2", cid, "/bin/cat", "/proc/self/cgroup")
            containerd.ctr("task", "kill", "-s", "9", cid)
            time.sleep(0.5)
        finally:
            stop.set()
            runner.join(30)
            containerd.ctr("containers", "rm", cid, check=False)
            server.stop()
            shipper.close()
            _cleanup_pod_cgroups(pod)
    ref = f"containerd://{cid}"
    everything = [r for b in server.batches for r in b["records"]]
    assert [r for r in everything if r["container_id"] is None] == []  # nothing from the host
    # Other containers on this node (other tests, other users) are reported too, rightly.
    records = [r for r in everything if r["container_id"] == ref]
    sha = busybox_sha256()
    got = sorted((r["container_id"], r["pod_uid"], r["kind"], r["path"], r["sha256"], r["count"]) for r in records)
    assert got == [
        (ref, pod, "executable", "/bin/cat", sha, 1),
        (ref, pod, "executable", "/bin/ls", sha, 1),
        (ref, pod, "executable", "/bin/sleep", sha, 1),
    ]
    argv = {r["path"]: r["samples"][0]["argv"] for r in records}
    assert argv == {
        "/bin/cat": ["/bin/cat", "/proc/self/cgroup"],
        "/bin/ls": ["/bin/ls", "/bin"],
        "/bin/sleep": ["/bin/sleep", "30"],
    }
    assert all(r["samples"][0]["pid"] > 0 and r["samples"][0]["uid"] == 0 for r in records)
    assert len(spool) == 0 and agent.events_seen > 0
    assert tracer_counters_ok(lines)


def tracer_counters_ok(lines: list[str]) -> bool:
    import json

    docs = [json.loads(x) for x in lines]
    # Every printed event is the container's: none from the host.
    return bool(docs) and all(d["container_id"] is not None for d in docs)


def test_sensor_stops_when_service_says_node_is_disabled(tmp_path: Path) -> None:
    server = IngestServer(token=TOKEN, heartbeat_answer={"sensor_disabled": True})
    spool = Spool(tmp_path / "spool")
    shipper = Shipper(server.url, TOKEN, spool)
    try:
        with ProcessTracer() as tracer:
            pipeline = EventPipeline(CgroupResolver(), FileHasher(), skip_cgroup=tracer.skip_cgroup)
            agent = SensorAgent(
                AgentSettings(cluster_id="c1", node_name="node-a"), tracer, pipeline, spool=spool, shipper=shipper
            )
            t0 = time.monotonic()
            agent.run(duration_s=20)
            assert time.monotonic() - t0 < 5
        assert agent.stop_reason == "node is labelled vigil.dev/sensor=disabled"
        assert [h["status"] for h in server.heartbeats] == ["running", "disabled"]
        beat = server.heartbeats[0]
        assert beat["node_name"] == "node-a" and beat["btf"] is True and beat["kernel"] == os.uname().release
        assert beat["events_lost"] == 0 and beat["batches_dropped"] == 0
    finally:
        server.stop()
        shipper.close()
