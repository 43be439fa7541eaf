"""Detection latency: from an exec, or a file write, inside a container to the finding visible through the API.

Workload (stated in every line): one container (containerd + runc, kubelet-style cgroup) from a
scanned busybox image on a loopback docker-registry; `vigil sensor` (real eBPF) shipping every
``--batch-interval`` seconds to the service (SQLite, runtime analyzer in the background); each
event writes a new binary into the container and runs it with `ctr task exec`, which is a
runtime_drift. Latency = the time a client of GET /api/v1/findings/stream receives the finding
minus the exec's kernel timestamp (the sample time in the finding's evidence; same host clock).
``stored_*`` is from the exec to the finding being stored (its first_seen_at: the sensor's batching
included). Each line also splits the time into ``sensor_*`` (the exec to the service committing the
batch that carried it: the first applied runtime batch logged after the exec, as the service runs in
this process), ``analysis_*`` (that commit to the finding stored) and ``stream_*`` (stored to received
on the stream).
Phases: ``idle``; ``file_tampering``: a shell in the container writes a new file into /usr/local/bin
(``sh -c 'echo x > /usr/local/bin/tN'``), which the sensor's in-kernel write filter passes and the
executable-dropped rule makes a file_tampering finding; latency is the write's kernel timestamp (the
activity sample's time) to the finding on the stream; then ``load`` with 500 execs/s of /bin/true
running in the same container (spawnbench from bench/sensor_overhead.py), i.e. background runtime
records and batches.

    sudo .venv/bin/python bench/detection_latency.py [--events 200] [--rate 500] [--batch-interval 0.1] \\
        [--phases idle,load,file_tampering]
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

# The runtime tests' harness and the sensor bench are plain modules in their folders, not packages:
# they are importable only once those folders are on the path.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "runtime"))
sys.path.insert(0, str(REPO / "bench"))

import runtime_e2e as h  # noqa: E402
from containerd_harness import start_containerd  # noqa: E402
from sensor_overhead import build_spawnbench  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class StreamWatcher:
    """Reads the findings stream; remembers when each finding of ``finding_type`` arrived, by evidence path."""

    def __init__(self, url: str, token: str, finding_type: str = "runtime_drift") -> None:
        self.arrived: dict[str, tuple[float, dict]] = {}
        self.cond = threading.Condition()
        self._stop = False
        self.thread = threading.Thread(target=self._run, args=(url, token, finding_type), daemon=True)
        self.thread.start()

    def _run(self, url: str, token: str, finding_type: str) -> None:
        import httpx

        with httpx.stream(
            "GET",
            f"{url}/api/v1/findings/stream",
            params={"type": finding_type},
            headers={"Authorization": f"Bearer {token}"},
            timeout=None,
        ) as resp:
            for line in resp.iter_lines():
                if self._stop:
                    return
                if line.startswith("data:"):
                    now = time.time()
                    body = json.loads(line[5:])
                    f = body.get("finding") or {}
                    path = (f.get("evidence") or {}).get("path")
                    if path and body["event"]["kind"] == "opened":
                        with self.cond:
                            self.arrived[path] = (now, f)
                            self.cond.notify_all()

    def wait(self, path: str, timeout: float = 30.0) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while path not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no finding for {path} within {timeout}s")
                self.cond.wait(left)
            return self.arrived[path]


class BatchArrivals(logging.Handler):
    """When the service committed each applied runtime batch: its "runtime batch" log line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "runtime batch" and getattr(record, "applied", False):
            self.times.append(record.created)

    def first_after(self, t: float) -> float | None:
        i = bisect.bisect_left(self.times, t)
        return self.times[i] if i < len(self.times) else None


class Timings:
    """Per event: the finding's arrival on the stream and its storing, each minus the kernel timestamp,
    and the three parts of the way (sensor to the batch committed, analysis, stream)."""

    def __init__(self, arrivals: BatchArrivals) -> None:
        self.arrivals = arrivals
        self.latencies: list[float] = []
        self.service: list[float] = []
        self.parts: dict[str, list[float]] = {"sensor": [], "analysis": [], "stream": []}
        self.without_process = 0  # findings whose process evidence lacks the executable or the command line

    def add(self, received: float, finding: dict) -> None:
        process = finding["evidence"]["process"]
        if not process.get("path") or not process.get("argv"):
            self.without_process += 1
        kernel_time = datetime.fromisoformat(process["samples"][0]["time"]).timestamp()
        stored = datetime.fromisoformat(finding["first_seen_at"]).timestamp()
        self.latencies.append((received - kernel_time) * 1000)
        self.service.append((stored - kernel_time) * 1000)
        committed = self.arrivals.first_after(kernel_time)
        if committed is not None and committed <= stored:
            self.parts["sensor"].append((committed - kernel_time) * 1000)
            self.parts["analysis"].append((stored - committed) * 1000)
        self.parts["stream"].append((received - stored) * 1000)

    def figures(self, phase: str, workload: str) -> dict:
        parts = {}
        for name, values in self.parts.items():
            if values:
                parts[f"{name}_p50_ms"] = round(statistics.median(values), 1)
                parts[f"{name}_p99_ms"] = round(percentile(values, 0.99), 1)
        return {
            "bench": "detection_latency",
            "phase": phase,
            "events": len(self.latencies),
            "without_process_evidence": self.without_process,
            "p50_ms": round(statistics.median(self.latencies), 1),
            "p99_ms": round(percentile(self.latencies, 0.99), 1),
            "max_ms": round(max(self.latencies), 1),
            "stored_p50_ms": round(statistics.median(self.service), 1),
            "stored_p99_ms": round(percentile(self.service, 0.99), 1),
            **parts,
            "aim_p99_ms": 250,
            "workload": workload,
        }


def run_phase(
    name: str,
    ctd,
    cid: str,
    init: int,
    watcher: StreamWatcher,
    events: int,
    busybox: bytes,
    workload: str,
    arrivals: BatchArrivals,
) -> dict:
    timings = Timings(arrivals)
    for i in range(events):
        path = f"/app/{name}{i}"
        h.put_file(init, path, busybox + f"\0{name}{i}".encode())
        h.exec_in(ctd, cid, f"{name}{i}", path)
        timings.add(*watcher.wait(path))
    return timings.figures(name, workload)


def run_tampering(ctd, cid: str, watcher: StreamWatcher, events: int, workload: str, arrivals: BatchArrivals) -> dict:
    timings = Timings(arrivals)
    h.exec_in(ctd, cid, "tamper-dir", "/bin/sh", "-c", "/bin/busybox mkdir -p /usr/local/bin")
    for i in range(events):
        path = f"/usr/local/bin/t{i}"
        h.exec_in(ctd, cid, f"tamper{i}", "/bin/sh", "-c", f"echo x > {path}")
        timings.add(*watcher.wait(path))
    return timings.figures("file_tampering", workload)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--rate", type=int, default=500, help="background execs per second in the load phase")
    ap.add_argument("--batch-interval", type=float, default=0.1, help="the sensor's --batch-interval")
    ap.add_argument("--phases", default="idle,load,file_tampering", help="comma-separated: idle, load, file_tampering")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    why = h.e2e_unavailable()
    if why:
        print(json.dumps({"bench": "detection_latency", "skipped": why}))
        return
    arrivals = BatchArrivals()
    ingest_log = logging.getLogger("vigil.service.api.ingest")
    ingest_log.setLevel(logging.INFO)
    ingest_log.addHandler(arrivals)
    with tempfile.TemporaryDirectory(prefix="vigil-latency-") as d:
        tmp = Path(d)
        registry = h.RegistryServer(workdir=tmp / "registry").start()
        ctd = start_containerd(tmp / "ctd")
        svc = sensor = None
        try:
            spawn = build_spawnbench(tmp)
            image = h.push_image(registry, tag="latency", extra={"/bin/spawnbench": spawn.read_bytes()})
            ctd.ctr("images", "pull", "--plain-http", image.ref, timeout=120)
            svc = h.runtime_service(tmp / "data", registry)
            cluster_id, credential = svc.register("latency")
            pod, cid = h.new_container_ids()
            h.post_inventory(
                svc,
                credential,
                h.inventory_snapshot(cluster_id, "node-lat", pods=[h.web_pod(pod, "node-lat", cid, image)]),
            )
            h.scan_and_match(svc)
            sensor = h.start_sensor(svc, credential, cluster_id, "node-lat", tmp / "sensor", args.batch_interval)
            init = h.run_container(ctd, image, pod, cid)
            h.wait_for_cmdline(init, ["/bin/sleep", "300"])
            watcher = StreamWatcher(svc.url, svc.token("viewer", "bench"))
            tampering = StreamWatcher(svc.url, svc.token("viewer", "bench-files"), "file_tampering")
            time.sleep(0.5)
            busybox = h.BUSYBOX.read_bytes()
            base = (
                f"1 container, sensor --batch-interval {args.batch_interval}s, SQLite service, "
                f"{args.events} sequential drift execs via ctr task exec"
            )
            if "idle" in phases:
                print(
                    json.dumps(
                        run_phase(
                            "idle",
                            ctd,
                            cid,
                            init,
                            watcher,
                            args.events,
                            busybox,
                            base + ", no background load",
                            arrivals,
                        )
                    ),
                    flush=True,
                )
            if "file_tampering" in phases:
                files = (
                    f"1 container, sensor --batch-interval {args.batch_interval}s, SQLite service, "
                    f"{args.events} sequential writes of a new file into /usr/local/bin by sh -c via ctr task exec"
                )
                print(json.dumps(run_tampering(ctd, cid, tampering, args.events, files, arrivals)), flush=True)
            if "load" not in phases:
                return
            load = subprocess.Popen(
                [
                    "ctr",
                    "--address",
                    str(ctd.socket),
                    "--namespace",
                    ctd.namespace,
                    "task",
                    "exec",
                    "--exec-id",
                    "load",
                    cid,
                    "/bin/spawnbench",
                    str(args.rate * 3600),
                    str(args.rate),
                    "/bin/true",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            time.sleep(2)
            try:
                print(
                    json.dumps(
                        run_phase(
                            "load",
                            ctd,
                            cid,
                            init,
                            watcher,
                            args.events,
                            busybox,
                            base + f", {args.rate} execs/s of /bin/true in the same container",
                            arrivals,
                        )
                    ),
                    flush=True,
                )
            finally:
                ctd.ctr("task", "kill", "--exec-id", "load", "-s", "9", cid, check=False)
                load.wait(30)
        finally:
            if sensor is not None:
                sensor.stop()
            if svc is not None:
                h.remove_container(ctd, cid, pod)
                svc.stop()
            ctd.stop()
            registry.close()


if __name__ == "__main__":
    main()
