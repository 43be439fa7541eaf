"""Load test: simulated sensors and controllers against 1 and 2 `vigil service` replicas on one PostgreSQL.

Workload (stated in every line): ``--clusters`` clusters (default 20) share the phase's nodes evenly;
each node runs ``--pods-per-node`` pods of one container from one scanned image (a loopback Debian
docker-registry). Per node, one simulated sensor with its own enrolled node credential sends a
SensorHeartbeat every ``--heartbeat-interval`` s and a gzip RuntimeBatch every ``--batch-interval`` s
holding ``--records-per-batch`` exec records of the image's own binaries (their real sha256s: no
finding, but every record is joined with the image by the runtime analysis). Per cluster, one
simulated controller with the cluster's credential posts an InventorySnapshot at the start of the
phase, then a Heartbeat every 15 s and an InventoryDelta every ``--churn-interval`` s (one pod
replaced: new uid, new container). Every ``--drift-interval`` s one node's next batch also carries a
planted drift (an exec of a binary that is not in the image); its latency is from that batch's send
(the sample's exec time; a sensor's batching wait is not included) to the runtime_drift finding on
the findings stream (SSE) of the last replica, so with 2 replicas it crosses replicas when the other
one holds the runtime lease. Clients are spread round-robin over the replicas' URLs (each sensor and
controller sticks to one, as behind a load balancer with keep-alive); all on loopback; one process
(asyncio + httpx). PostgreSQL is a throwaway cluster (Debian's postgresql, fsync off as in the tests).

CPU per process is from /proc/<pid>/stat over the phase (cores = CPU seconds / wall seconds; PostgreSQL's
includes the backends that ended within the phase, from the postmaster's reaped children), memory
is VmRSS / VmHWM for a service and the sum of Pss over PostgreSQL's processes (shared buffers counted
once). The store's growth is PostgreSQL's pg_database_size and each table's pg_total_relation_size
(with indexes and TOAST) over the phase's load (after its snapshots) and over the load's last quarter,
extrapolated to bytes per simulated node per day: the growth per runtime batch the service applied,
times the batches a node sends in a day at ``--batch-interval`` (``store`` in each line). Heartbeats and pod
churn scale with the batches served (each client waits for its answers), so a saturated phase still
gives the per-day figure of the offered rates. Autovacuum runs as usual, so space freed by updates and
deletes is reused. Prints one JSON line per (nodes, replicas)
phase, then one ratio line (2 replicas / 1) per node count.

    .venv/bin/python bench/load.py [--nodes 100,500,1000] [--replicas 1,2] [--duration 40] \\
        [--heartbeat-interval 15] [--batch-interval 5] [--clusters 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine, select, text

from vigil.devtools.oci import LayerFile, build_image, push, tar_layer
from vigil.devtools.postgres import ThrowawayPostgres
from vigil.devtools.registry_server import RegistryServer, find_registry_binary
from vigil.devtools.service_process import ServiceProcess
from vigil.policy.trust import Pattern
from vigil.registry import RegistryClient, RegistryConfig
from vigil.service.store.clusters import cluster_for_registration
from vigil.service.store.db import create_store_engine, migrate
from vigil.service.store.policy import add_trusted
from vigil.service.store.schema import image_scans
from vigil.service.store.tokens import issue_token
from vigil.wire.inventory import Container, Heartbeat, InventoryDelta, InventorySnapshot, Node, Pod, Workload
from vigil.wire.runtime import (
    RUNTIME_INGEST_PATH,
    SENSOR_HEARTBEAT_PATH,
    ExecSample,
    RuntimeBatch,
    RuntimeRecord,
    SensorHeartbeat,
)

INVENTORY_PATH = "/api/v1/ingest/inventory"
CONTROLLER_HEARTBEAT_PATH = "/api/v1/ingest/heartbeat"
CONTROLLER_HEARTBEAT_S = 15.0
NAMESPACE = "shop"
WORKLOADS = 5  # Deployments per cluster; pods are spread over them
REQUEST_TIMEOUT_S = 10.0
DRIFT_WAIT_S = 15.0  # after the phase, how long a planted drift may still take to arrive
# The image's binaries: what the records exec, with their real bytes (so their sha256 is in the image).
IMAGE_FILES = {
    f"usr/bin/{name}": f"#!/bin/sh\n# {name}\nexec sleep 3600\n".encode() for name in ("app", "worker", "healthcheck")
}
IMAGE_SHA = {f"/{path}": hashlib.sha256(data).hexdigest() for path, data in IMAGE_FILES.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the simulated clusters --------------------------------------------------------------------------


@dataclass
class SimPod:
    uid: str
    name: str
    container_id: str  # 64 hex
    workload: str


@dataclass
class SimNode:
    name: str
    credential: str = ""
    sensor_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    seq: int = 0
    pods: list[SimPod] = field(default_factory=list)
    pending_drift: list[str] = field(default_factory=list)  # paths to exec in the next batch


@dataclass
class SimCluster:
    name: str
    cluster_id: str
    credential: str
    nodes: list[SimNode]


def new_pod(node: SimNode, n: int) -> SimPod:
    uid = str(uuid.uuid4())
    workload = f"app-{n % WORKLOADS}"
    return SimPod(uid, f"{workload}-{uid[:8]}", hashlib.sha256(uid.encode()).hexdigest(), workload)


def wire_pod(pod: SimPod, node: SimNode, ref: str, digest: str) -> Pod:
    container = Container(
        name="app",
        image=ref,
        image_id=f"{ref.rsplit(':', 1)[0]}@{digest}",
        image_digest=digest,
        container_id=f"containerd://{pod.container_id}",
        state="running",
    )
    return Pod(
        uid=pod.uid,
        namespace=NAMESPACE,
        name=pod.name,
        node_name=node.name,
        phase="Running",
        workload={"kind": "Deployment", "name": pod.workload},
        containers=[container],
    )


def snapshot(cluster: SimCluster, nodes: list[SimNode], ref: str, digest: str) -> InventorySnapshot:
    return InventorySnapshot(
        kind="snapshot",
        batch_id=f"snap-{uuid.uuid4().hex[:16]}",
        cluster_id=cluster.cluster_id,
        nodes=[
            Node(name=n.name, labels={"kubernetes.io/hostname": n.name}, container_runtime="containerd://1.6.20")
            for n in nodes
        ],
        workloads=[Workload(namespace=NAMESPACE, kind="Deployment", name=f"app-{w}") for w in range(WORKLOADS)],
        pods=[wire_pod(p, n, ref, digest) for n in nodes for p in n.pods],
    )


def runtime_batch(cluster: SimCluster, node: SimNode, records_per_batch: int, rnd: random.Random) -> RuntimeBatch:
    now = datetime.now(UTC)
    records: dict[tuple[str, str], RuntimeRecord] = {}

    def record(pod: SimPod, path: str, sha: str) -> RuntimeRecord:
        sample = ExecSample(time=now, pid=rnd.randrange(100, 60000), ppid=1, uid=0, gid=0, filename=path, argv=[path])
        return RuntimeRecord(
            container_id=f"containerd://{pod.container_id}",
            pod_uid=pod.uid,
            path=path,
            sha256=sha,
            first_seen=now,
            last_seen=now,
            count=1,
            samples=[sample],
        )

    for _ in range(records_per_batch):
        pod = rnd.choice(node.pods)
        path = rnd.choice(list(IMAGE_SHA))
        records[(pod.uid, path)] = record(pod, path, IMAGE_SHA[path])
    for path in node.pending_drift:
        records[(node.pods[0].uid, path)] = record(node.pods[0], path, hashlib.sha256(path.encode()).hexdigest())
    node.pending_drift = []
    node.seq += 1
    return RuntimeBatch(
        batch_id=f"rt-{uuid.uuid4().hex}",
        cluster_id=cluster.cluster_id,
        node_name=node.name,
        sensor_id=node.sensor_id,
        seq=node.seq,
        window_start=now - timedelta(seconds=5),
        window_end=now,
        records=list(records.values()),
    )


# -- measurements ------------------------------------------------------------------------------------


class Recorder:
    """Latency and errors per endpoint for one phase."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_sample: list[str] = []

    async def post(self, client: httpx.AsyncClient, endpoint: str, path: str, token: str, body: bytes) -> bool:
        headers = {**bearer(token), "Content-Type": "application/json", "Content-Encoding": "gzip"}
        started = time.perf_counter()
        try:
            resp = await client.post(path, content=gzip.compress(body, mtime=0), headers=headers)
            ok = resp.status_code in (200, 201)
            why = "" if ok else f"{endpoint}: HTTP {resp.status_code} {resp.text[:200]}"
        except httpx.HTTPError as exc:
            ok, why = False, f"{endpoint}: {type(exc).__name__} {exc}"[:240]
        if ok:
            self.latencies[endpoint].append((time.perf_counter() - started) * 1000)
        else:
            self.errors[endpoint] += 1
            if len(self.error_sample) < 5:
                self.error_sample.append(why)
        return ok

    def figures(self, duration: float) -> dict:
        out = {}
        for endpoint in sorted(set(self.latencies) | set(self.errors)):
            lat = self.latencies[endpoint]
            out[endpoint] = {
                "requests": len(lat) + self.errors[endpoint],
                "rps": round(len(lat) / duration, 1),
                "p50_ms": round(statistics.median(lat), 1) if lat else None,
                "p99_ms": round(percentile(lat, 0.99), 1) if lat else None,
                "errors": self.errors[endpoint],
            }
        return out


def _ticks(pid: int, *, reaped: bool = False) -> int:
    """utime + stime; with ``reaped``, also the children it has waited for (cutime + cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(v) for v in fields[11 : 15 if reaped else 13])


def postgres_ticks(pg: ThrowawayPostgres) -> dict[int, int]:
    """CPU ticks of PostgreSQL per process; the postmaster's include the backends that already ended
    (a replica's pool closes its overflow connections, so backends come and go within a phase)."""
    pids = postgres_pids(pg)
    return {pid: _ticks(pid, reaped=pid == pids[0]) for pid in pids}


def _status_kb(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0.0


def _pss_kb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0.0


def postgres_pids(pg: ThrowawayPostgres) -> list[int]:
    postmaster = int((pg.dir / "data" / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == postmaster:
                pids.append(int(entry.name))
    return pids


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class Usage:
    """CPU of the replicas, PostgreSQL, this process and the machine over one phase."""

    def __init__(self, replicas: list[ServiceProcess], pg: ThrowawayPostgres) -> None:
        self.replicas, self.pg = replicas, pg
        self.hz = os.sysconf("SC_CLK_TCK")
        self.wall = time.monotonic()
        self.svc = {r.pid: _ticks(r.pid) for r in replicas}
        self.pgs = postgres_ticks(pg)
        self.me = time.process_time()
        self.machine = machine_ticks()
        self.load_start = loadavg()

    def figures(self) -> dict:
        wall = time.monotonic() - self.wall
        cores = lambda ticks: round(ticks / self.hz / wall, 2)  # noqa: E731
        pg_now = postgres_ticks(self.pg)
        busy, total = machine_ticks()
        return {
            "service": [
                {
                    "pid": r.pid,
                    "cpu_cores": cores(_ticks(r.pid) - self.svc[r.pid]),
                    "rss_mb": round(_status_kb(r.pid, "VmRSS") / 1024, 1),
                    "peak_rss_mb": round(_status_kb(r.pid, "VmHWM") / 1024, 1),
                }
                for r in self.replicas
            ],
            "postgres": {
                "cpu_cores": cores(sum(t - self.pgs.get(pid, 0) for pid, t in pg_now.items())),
                "pss_mb": round(sum(_pss_kb(pid) for pid in pg_now) / 1024, 1),
                "processes": len(pg_now),
            },
            "loadgen_cpu_cores": round((time.process_time() - self.me) / wall, 2),
            "machine_cpu_busy": round((busy - self.machine[0]) / max(1, total - self.machine[1]), 2),
            "loadavg_start": self.load_start,
            "loadavg_end": loadavg(),
        }


# -- one phase ---------------------------------------------------------------------------------------


@dataclass
class Phase:
    clusters: list[SimCluster]
    nodes_per_cluster: int
    urls: list[str]
    ref: str
    digest: str
    args: argparse.Namespace
    recorder: Recorder = field(default_factory=Recorder)
    planted: dict[str, float] = field(default_factory=dict)  # drift path -> exec time (epoch s)
    arrived: dict[str, float] = field(default_factory=dict)  # drift path -> arrival on the stream
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    end: float = 0.0
    engine: Engine | None = None  # the shared store, for its sizes over the load
    # (store sizes, runtime batches applied so far) at the load's start, each quarter and its end
    sizes: list[tuple[dict, int]] = field(default_factory=list)

    def nodes(self, cluster: SimCluster) -> list[SimNode]:
        return cluster.nodes[: self.nodes_per_cluster]

    def client(self, n: int) -> httpx.AsyncClient:
        return self.clients[n % len(self.clients)]

    async def _sleep_until(self, at: float) -> bool:
        delay = min(at, self.end) - time.monotonic()  # the phase ends on time, not at a client's next tick
        if delay > 0:
            await asyncio.sleep(delay)
        return time.monotonic() < self.end

    async def sensor(self, n: int, cluster: SimCluster, node: SimNode) -> None:
        a = self.args
        client, rnd = self.client(n), random.Random(n)
        beat_at = time.monotonic() + rnd.uniform(0, a.heartbeat_interval)
        batch_at = time.monotonic() + rnd.uniform(0, a.batch_interval)
        while True:
            at = min(beat_at, batch_at)
            if not await self._sleep_until(at):
                return
            if at == beat_at:
                beat_at += a.heartbeat_interval
                beat = SensorHeartbeat(
                    cluster_id=cluster.cluster_id,
                    node_name=node.name,
                    version="bench",
                    btf=True,
                    events_seen=node.seq * 100,
                    interval_seconds=max(1, round(a.heartbeat_interval)),
                )
                body = beat.model_dump_json().encode()
                await self.recorder.post(client, "sensor_heartbeat", SENSOR_HEARTBEAT_PATH, node.credential, body)
            else:
                batch_at += a.batch_interval
                drifts = list(node.pending_drift)
                batch = runtime_batch(cluster, node, a.records_per_batch, rnd)
                sent = batch.window_end.timestamp()
                for path in drifts:
                    self.planted[path] = sent
                body = batch.model_dump_json().encode()
                await self.recorder.post(client, "runtime", RUNTIME_INGEST_PATH, node.credential, body)

    async def controller(self, n: int, cluster: SimCluster) -> None:
        a = self.args
        client, rnd = self.client(n), random.Random(1000 + n)
        beat_at = time.monotonic() + rnd.uniform(0, CONTROLLER_HEARTBEAT_S)
        churn_at = time.monotonic() + rnd.uniform(0, a.churn_interval)
        while True:
            at = min(beat_at, churn_at)
            if not await self._sleep_until(at):
                return
            if at == beat_at:
                beat_at += CONTROLLER_HEARTBEAT_S
                body = Heartbeat(cluster_id=cluster.cluster_id, version="bench").model_dump_json().encode()
                await self.recorder.post(
                    client, "controller_heartbeat", CONTROLLER_HEARTBEAT_PATH, cluster.credential, body
                )
                continue
            churn_at += a.churn_interval
            node = rnd.choice(self.nodes(cluster))
            old = rnd.randrange(len(node.pods))
            replacement = new_pod(node, rnd.randrange(WORKLOADS))
            delta = InventoryDelta(
                kind="delta",
                batch_id=f"delta-{uuid.uuid4().hex[:16]}",
                cluster_id=cluster.cluster_id,
                pods=[wire_pod(replacement, node, self.ref, self.digest)],
                deletes={"pods": [node.pods[old].uid]},
            )
            if await self.recorder.post(
                client, "inventory_delta", INVENTORY_PATH, cluster.credential, delta.model_dump_json().encode()
            ):
                node.pods[old] = replacement  # the sensor sees the new container from now on

    async def planter(self) -> None:
        rnd, i = random.Random(7), 0
        every = self.args.drift_interval
        if every <= 0:
            return  # no planted drift (a store growth run without findings)
        while await self._sleep_until(time.monotonic() + every):
            cluster = rnd.choice(self.clusters)
            node = rnd.choice(self.nodes(cluster))
            node.pending_drift.append(f"/usr/local/bin/drift-{uuid.uuid4().hex[:12]}-{i}")
            i += 1

    async def sample_size(self) -> None:
        if self.engine is not None:
            applied = len(self.recorder.latencies["runtime"])
            self.sizes.append((await asyncio.to_thread(store_sizes, self.engine), applied))

    async def sample_sizes(self) -> None:
        """The store's sizes at the start of the load and after each of its first three quarters."""
        start = time.monotonic()
        for quarter in range(4):
            if quarter and not await self._sleep_until(start + self.args.duration * quarter / 4):
                return
            await self.sample_size()

    async def stream(self, url: str, token: str, ready: asyncio.Event) -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT_S, read=None)) as client,
            client.stream(
                "GET", f"{url}/api/v1/findings/stream", params={"type": "runtime_drift"}, headers=bearer(token)
            ) as resp,
        ):
            resp.raise_for_status()
            ready.set()
            data: list[str] = []
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    body = json.loads("\n".join(data))
                    data = []
                    path = ((body.get("finding") or {}).get("evidence") or {}).get("path")
                    if path and body["event"]["kind"] == "opened":
                        self.arrived[path] = time.time()

    async def run(self, admin: str) -> dict:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self.clients = [
            httpx.AsyncClient(
                base_url=u, timeout=REQUEST_TIMEOUT_S, limits=limits, headers={"User-Agent": "vigil-bench"}
            )
            for u in self.urls
        ]
        ready = asyncio.Event()
        stream = asyncio.create_task(self.stream(self.urls[-1], admin, ready))
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.sleep(0.5)  # the stream starts at "now"
        try:
            snap = Recorder()
            self.end = time.monotonic() + 3600
            started = time.perf_counter()
            oks = await asyncio.gather(
                *(
                    snap.post(
                        self.client(i),
                        "inventory_snapshot",
                        INVENTORY_PATH,
                        c.credential,
                        snapshot(c, self.nodes(c), self.ref, self.digest).model_dump_json().encode(),
                    )
                    for i, c in enumerate(self.clusters)
                )
            )
            snapshots_s = time.perf_counter() - started
            if not all(oks):
                raise RuntimeError(f"snapshots failed: {snap.error_sample}")
            self.end = time.monotonic() + self.args.duration
            t0 = time.monotonic()
            tasks = [self.planter(), self.sample_sizes()]
            n = 0
            for i, c in enumerate(self.clusters):
                tasks.append(self.controller(i, c))
                for node in self.nodes(c):
                    tasks.append(self.sensor(n, c, node))
                    n += 1
            await asyncio.gather(*tasks)
            duration = time.monotonic() - t0
            await self.sample_size()
            deadline = time.monotonic() + DRIFT_WAIT_S
            while set(self.planted) - set(self.arrived) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        finally:
            stream.cancel()
            for client in self.clients:
                await client.aclose()
        lat = [(self.arrived[p] - t) * 1000 for p, t in self.planted.items() if p in self.arrived]
        total_ok = sum(len(v) for v in self.recorder.latencies.values())
        return {
            "snapshot_s": round(snapshots_s, 2),
            "duration_s": round(duration, 1),
            "requests": total_ok + sum(self.recorder.errors.values()),
            "rps": round(total_ok / duration, 1),
            "errors": sum(self.recorder.errors.values()),
            "error_sample": self.recorder.error_sample,
            "endpoints": self.recorder.figures(duration),
            "drift": {
                "planted": len(self.planted),
                "found": len(lat),
                "p50_ms": round(statistics.median(lat), 1) if lat else None,
                "p99_ms": round(percentile(lat, 0.99), 1) if lat else None,
                "max_ms": round(max(lat), 1) if lat else None,
            },
        }


# -- the service side --------------------------------------------------------------------------------


def push_image(registry: RegistryServer) -> tuple[str, str]:
    image = build_image([tar_layer({path: LayerFile(data, mode=0o755) for path, data in IMAGE_FILES.items()})])
    ref = f"{registry.host}/bench/app:1"
    with RegistryClient(RegistryConfig.from_mapping({registry.host: {"plain_http": True}})) as client:
        return ref, push(client, ref, image)


def post_json(url: str, token: str, body: dict) -> dict:
    resp = httpx.post(url, json=body, headers=bearer(token), timeout=60)
    if resp.status_code not in (200, 201):
        raise RuntimeError(f"POST {url}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json()


async def enrol_sensors(url: str, cluster: SimCluster) -> None:
    enrolment = post_json(f"{url}/api/v1/clusters/{cluster.cluster_id}/sensor-enrolment", cluster.credential, {})
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        sem = asyncio.Semaphore(8)

        async def one(node: SimNode) -> None:
            async with sem:
                resp = await client.post(
                    f"/api/v1/clusters/{cluster.cluster_id}/sensors",
                    json={"node": node.name},
                    headers=bearer(enrolment["credential"]),
                )
            if resp.status_code != 200:
                raise RuntimeError(f"enrolling {node.name}: HTTP {resp.status_code} {resp.text[:300]}")
            node.credential = resp.json()["credential"]

        await asyncio.gather(*(one(n) for n in cluster.nodes))


def setup_clusters(engine, url: str, count: int, nodes_per_cluster: int, pods_per_node: int) -> list[SimCluster]:
    clusters = []
    for c in range(count):
        name = f"load-{c:02d}"
        with engine.begin() as conn:
            token = cluster_for_registration(conn, name, timedelta(hours=1), 1)[1].secret
        reg = post_json(f"{url}/api/v1/clusters/register", token, {"name": name})
        nodes = [SimNode(f"node-{i:04d}") for i in range(nodes_per_cluster)]
        for node in nodes:
            node.pods = [new_pod(node, k) for k in range(pods_per_node)]
        clusters.append(SimCluster(name, reg["cluster_id"], reg["credential"], nodes))
        asyncio.run(enrol_sensors(url, clusters[-1]))
    return clusters


def wait_scanned(engine, digest: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            status = conn.execute(select(image_scans.c.status).where(image_scans.c.digest == digest)).scalar()
        if status == "done":
            return
        time.sleep(0.5)
    raise RuntimeError(f"image {digest} not scanned within {timeout}s (status {status})")


def db_size_mb(engine) -> float:
    with engine.connect() as conn:
        return round(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() / 1e6, 1)


def store_sizes(engine) -> dict:
    """The database's size and each of its tables' (indexes and TOAST included), in bytes."""
    with engine.connect() as conn:
        database = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        tables = conn.execute(
            text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public'"
            )
        ).all()
    return {"database": int(database), "tables": {name: int(size) for name, size in tables}}


def growth(before: tuple[dict, int], after: tuple[dict, int], batch_interval: float, top: int = 8) -> dict:
    """Growth between two samples, and per simulated node per day: per runtime batch applied in
    between, times a node's runtime batches in a day."""
    (b, b_batches), (a, a_batches) = before, after
    batches = a_batches - b_batches
    per_day = 86400 / batch_interval / batches if batches else 0.0
    grown = {t: size - b["tables"].get(t, 0) for t, size in a["tables"].items()}
    biggest = sorted(((t, n) for t, n in grown.items() if n), key=lambda kv: (-kv[1], kv[0]))[:top]
    total = a["database"] - b["database"]
    return {
        "runtime_batches_applied": batches,
        "database_bytes": [b["database"], a["database"]],
        "growth_bytes": total,
        "bytes_per_node_per_day": round(total * per_day),
        "tables_growth_bytes": dict(biggest),
        "tables_bytes_per_node_per_day": {t: round(n * per_day) for t, n in biggest},
    }


def store_growth(args, sizes: list[tuple[dict, int]], nodes: int, seconds: float) -> dict:
    """Over the whole load, and over its last quarter: by then the early records of the nodes' image
    binaries (merged by key afterwards) are in, so it is nearer the lasting rate."""
    return {
        "seconds": round(seconds, 1),
        "runtime_batches_offered": round(nodes * seconds / args.batch_interval),
        "whole_load": growth(sizes[0], sizes[-1], args.batch_interval),
        "last_quarter": growth(sizes[-2], sizes[-1], args.batch_interval),
        "rates": (
            f"per node a runtime batch of {args.records_per_batch} exec records every {args.batch_interval:g}s "
            f"({86400 / args.batch_interval:,.0f} a day) and a sensor heartbeat every {args.heartbeat_interval:g}s; "
            f"per cluster a pod replaced every {args.churn_interval:g}s and a heartbeat every "
            f"{CONTROLLER_HEARTBEAT_S:g}s; "
            + (f"a planted drift every {args.drift_interval:g}s" if args.drift_interval > 0 else "no planted drift")
        ),
    }


def offered_rps(args, nodes: int) -> float:
    """What the simulated clients ask per second when every answer is immediate (each waits for its own)."""
    per_cluster = 1 / CONTROLLER_HEARTBEAT_S + 1 / args.churn_interval
    return round(nodes * (1 / args.heartbeat_interval + 1 / args.batch_interval) + args.clusters * per_cluster, 1)


def workload(args, nodes: int, replicas: int) -> str:
    return (
        f"{nodes} nodes over {args.clusters} clusters, {args.pods_per_node} pods/node, {replicas} replica(s) "
        f"`vigil service` on one PostgreSQL (fsync off); per node a sensor heartbeat every "
        f"{args.heartbeat_interval:g}s and a gzip runtime batch of {args.records_per_batch} exec records every "
        f"{args.batch_interval:g}s; per cluster a snapshot, a heartbeat every {CONTROLLER_HEARTBEAT_S:g}s and a pod "
        f"replaced every {args.churn_interval:g}s; a planted drift every {args.drift_interval:g}s; "
        f"{args.duration:g}s per phase; loopback, load generator in one process on the same {os.cpu_count()}-core host"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="100,500,1000", help="simulated node counts, one phase pair each")
    ap.add_argument("--replicas", default="1,2", help="replica counts per node count")
    ap.add_argument("--clusters", type=int, default=20)
    ap.add_argument("--pods-per-node", type=int, default=10)
    ap.add_argument("--duration", type=float, default=40.0, help="seconds of load per phase")
    ap.add_argument("--heartbeat-interval", type=float, default=15.0)
    ap.add_argument("--batch-interval", type=float, default=5.0)
    ap.add_argument("--records-per-batch", type=int, default=3)
    ap.add_argument("--churn-interval", type=float, default=5.0, help="seconds between pod replacements per cluster")
    ap.add_argument("--drift-interval", type=float, default=1.0, help="seconds between planted drift execs (0: none)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (the replicas' logs)")
    args = ap.parse_args()
    node_counts = [int(x) for x in args.nodes.split(",")]
    replica_counts = [int(x) for x in args.replicas.split(",")]
    if any(n % args.clusters or n <= 0 for n in node_counts):
        ap.error(f"--nodes: each count must be a positive multiple of --clusters ({args.clusters})")
    if not 1 <= max(replica_counts) <= 4 or max(node_counts) > 5000 or not 1 <= args.duration <= 600:
        ap.error("bounded: --replicas 1-4, --nodes up to 5000, --duration 1-600 s")
    if find_registry_binary() is None:
        print("docker-registry binary missing (Debian package docker-registry)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="vigil-load-"))
    pg = ThrowawayPostgres().start()
    registry = RegistryServer(workdir=work / "registry").start()
    replicas: list[ServiceProcess] = []
    try:
        engine = create_store_engine(pg.url)
        migrate(engine)
        with engine.begin() as conn:
            admin = issue_token(conn, role="admin", name="bench-admin").secret
            add_trusted(conn, Pattern.parse(registry.host), None, "token:bench-admin")
        (work / "registries.json").write_text(json.dumps({registry.host: {"plain_http": True}}))
        ref, digest = push_image(registry)

        def start_replica(name: str) -> ServiceProcess:
            r = ServiceProcess(work / name, pg.url, args=("--registry-config", str(work / "registries.json")))
            replicas.append(r.start())
            return r

        first = start_replica("replica-0")
        clusters = setup_clusters(
            engine, first.url, args.clusters, max(node_counts) // args.clusters, args.pods_per_node
        )
        # The image is scanned once, before any phase: drift is judged against its contents.
        c0 = clusters[0]
        post_json(
            f"{first.url}{INVENTORY_PATH}",
            c0.credential,
            snapshot(c0, c0.nodes[:1], ref, digest).model_dump(mode="json"),
        )
        wait_scanned(engine, digest)

        by_nodes: dict[int, dict[int, dict]] = defaultdict(dict)
        for nodes in node_counts:
            for count in replica_counts:
                while len(replicas) < count:
                    start_replica(f"replica-{len(replicas)}")
                while len(replicas) > count:
                    replicas.pop().stop()
                phase = Phase(
                    clusters, nodes // args.clusters, [r.url for r in replicas], ref, digest, args, engine=engine
                )
                usage = Usage(replicas, pg)
                got = asyncio.run(phase.run(admin))
                line = {
                    "bench": "load",
                    "phase": f"nodes={nodes} replicas={count}",
                    "nodes": nodes,
                    "clusters": args.clusters,
                    "replicas": count,
                    "offered_rps": offered_rps(args, nodes),
                    **got,
                    **usage.figures(),
                    "db_size_mb": db_size_mb(engine),
                    "store": store_growth(args, phase.sizes, nodes, got["duration_s"]),
                    "workload": workload(args, nodes, count),
                }
                by_nodes[nodes][count] = line
                print(json.dumps(line), flush=True)
            one, two = by_nodes[nodes].get(1), by_nodes[nodes].get(2)
            if one and two:
                rt1, rt2 = one["endpoints"].get("runtime", {}), two["endpoints"].get("runtime", {})
                ratio = lambda a, b: round(a / b, 2) if a and b else None  # noqa: E731
                print(
                    json.dumps(
                        {
                            "bench": "load",
                            "phase": f"nodes={nodes} ratio 2 replicas / 1",
                            "nodes": nodes,
                            "rps_ratio": ratio(two["rps"], one["rps"]),
                            "runtime_p99_ratio": ratio(rt2.get("p99_ms"), rt1.get("p99_ms")),
                            "drift_p99_ratio": ratio(two["drift"]["p99_ms"], one["drift"]["p99_ms"]),
                            "service_cpu_ratio": ratio(
                                sum(s["cpu_cores"] for s in two["service"]), sum(s["cpu_cores"] for s in one["service"])
                            ),
                            "errors": [one["errors"], two["errors"]],
                            "workload": workload(args, nodes, 2) + " vs the same with 1 replica",
                        }
                    ),
                    flush=True,
                )
        engine.dispose()
    finally:
        for r in replicas:
            r.stop()
        registry.close()
        pg.stop()
        if args.keep:
            print(f"replica logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
