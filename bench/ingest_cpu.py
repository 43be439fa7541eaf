"""Benchmark: the service's CPU per ingest request, this code against an earlier commit's, alternated.

Workload: one `vigil service` child process on a throwaway PostgreSQL (Debian's postgresql, fsync
off as in the tests); one registered cluster with 20 nodes, each with its own enrolled sensor
credential. A client in this process sends, one at a time over one keep-alive connection,
``--requests`` of each kind: gzip runtime batches of up to 3 exec records (20 paths and sha256s
drawn per node, so most records merge into rows stored before), sensor heartbeats, and controller
heartbeats. The figure per kind is the service process's CPU (user + system from /proc/<pid>/stat)
over its requests divided by their number: it includes what the requests wake in the service (the
runtime analysis of the batch's records), not PostgreSQL's CPU nor this client's.

``--baseline-src DIR`` (a ``src`` folder of an earlier commit: ``git archive <commit> src | tar -x -C
/tmp/old``) runs that code's service alternated with this one's (``--src``, by default the code this
interpreter imports) for ``--rounds`` rounds each on the same store, and prints each round and the
medians' ratio new/old per kind. One JSON object a line.

    .venv/bin/python bench/ingest_cpu.py --baseline-src /tmp/old/src [--src /tmp/new/src] \\
        [--requests 300] [--rounds 4]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from vigil.devtools.postgres import ThrowawayPostgres
from vigil.devtools.service_process import ServiceProcess
from vigil.service.store.clusters import cluster_for_registration
from vigil.service.store.db import create_store_engine, migrate
from vigil.service.store.tokens import issue_token
from vigil.wire.inventory import Heartbeat
from vigil.wire.runtime import (
    RUNTIME_INGEST_PATH,
    SENSOR_HEARTBEAT_PATH,
    ExecSample,
    RuntimeBatch,
    RuntimeRecord,
    SensorHeartbeat,
)

CONTROLLER_HEARTBEAT_PATH = "/api/v1/ingest/heartbeat"
NODES = 20
WARMUP = 3  # requests of each kind per code before its figures: imports, pool, prepared statements
TICK = os.sysconf("SC_CLK_TCK")

Request = tuple[str, bytes, dict[str, str]]  # credential, body, extra headers


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Sensors:
    """The simulated nodes' credentials and request bodies."""

    def __init__(self, cluster_id: str, cluster_credential: str, credentials: dict[str, str]) -> None:
        self.cluster_id, self.cluster_credential, self.credentials = cluster_id, cluster_credential, credentials
        self.rnd = random.Random(1)
        self.seq = dict.fromkeys(credentials, 0)

    def runtime(self, node: str) -> Request:
        self.seq[node] += 1
        now = datetime.now(UTC)
        records: dict[tuple[str, str], RuntimeRecord] = {}
        for _ in range(3):
            n = self.rnd.randrange(20)
            path, container = f"/usr/bin/tool{n}", f"containerd://{node}-c{self.rnd.randrange(10)}"
            sample = ExecSample(
                time=now, pid=self.rnd.randrange(100, 60000), ppid=1, uid=0, gid=0, filename=path, argv=[path]
            )
            records[(container, path)] = RuntimeRecord(
                container_id=container,
                pod_uid=str(uuid.uuid5(uuid.NAMESPACE_DNS, node)),
                path=path,
                sha256=f"{n:064x}",
                first_seen=now,
                last_seen=now,
                count=1,
                samples=[sample],
            )
        batch = RuntimeBatch(
            batch_id=f"rt-{uuid.uuid4().hex}",
            cluster_id=self.cluster_id,
            node_name=node,
            sensor_id=f"sensor-{node}",
            seq=self.seq[node],
            window_start=now - timedelta(seconds=5),
            window_end=now,
            records=list(records.values()),
        )
        return self.credentials[node], gzip.compress(batch.model_dump_json().encode()), {"Content-Encoding": "gzip"}

    def sensor_heartbeat(self, node: str) -> Request:
        beat = SensorHeartbeat(
            cluster_id=self.cluster_id, node_name=node, version="bench", btf=True, events_seen=100, interval_seconds=15
        )
        return self.credentials[node], beat.model_dump_json().encode(), {}

    def controller_heartbeat(self, _node: str) -> Request:
        beat = Heartbeat(cluster_id=self.cluster_id, version="bench")
        return self.cluster_credential, beat.model_dump_json().encode(), {}


def kinds(sensors: Sensors) -> dict[str, tuple[str, Callable[[str], Request]]]:
    return {
        "runtime": (RUNTIME_INGEST_PATH, sensors.runtime),
        "sensor_heartbeat": (SENSOR_HEARTBEAT_PATH, sensors.sensor_heartbeat),
        "controller_heartbeat": (CONTROLLER_HEARTBEAT_PATH, sensors.controller_heartbeat),
    }


def post(client: httpx.Client, path: str, request: Request) -> None:
    credential, body, extra = request
    headers = {"Authorization": f"Bearer {credential}", "Content-Type": "application/json", **extra}
    client.post(path, content=body, headers=headers).raise_for_status()


def measure(service: ServiceProcess, sensors: Sensors, requests: int) -> dict[str, float]:
    """Milliseconds of the service's CPU per request, per kind."""
    nodes = sorted(sensors.credentials)
    out: dict[str, float] = {}
    with httpx.Client(base_url=service.url, timeout=60) as client:
        for path, make in kinds(sensors).values():
            for node in nodes[:WARMUP]:
                post(client, path, make(node))
        for kind, (path, make) in kinds(sensors).items():
            bodies = [make(nodes[i % len(nodes)]) for i in range(requests)]
            before = cpu_seconds(service.pid)
            for request in bodies:
                post(client, path, request)
            out[kind] = round((cpu_seconds(service.pid) - before) / requests * 1000, 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-src", required=True, help="src folder of an earlier commit, run in the same run")
    ap.add_argument("--src", default=None, help="src folder of the code to measure (default: this interpreter's)")
    ap.add_argument("--requests", type=int, default=300, help="requests of each kind per round and code")
    ap.add_argument("--rounds", type=int, default=4, help="alternated rounds per code")
    args = ap.parse_args()
    if not 1 <= args.requests <= 10_000 or not 1 <= args.rounds <= 20:
        ap.error("bounded: --requests 1-10000, --rounds 1-20")
    for src in (args.baseline_src, args.src):
        if src is not None and not (Path(src) / "vigil" / "__init__.py").is_file():
            ap.error(f"{src} is not a src folder (no vigil/__init__.py in it)")

    work = Path(tempfile.mkdtemp(prefix="vigil-ingest-cpu-"))
    pg = ThrowawayPostgres().start()
    try:
        engine = create_store_engine(pg.url)
        migrate(engine)
        with engine.begin() as conn:
            registration = cluster_for_registration(conn, "bench", timedelta(hours=1), 1)[1].secret
        first = ServiceProcess(work / "register", pg.url).start()
        try:
            answer = httpx.post(
                f"{first.url}/api/v1/clusters/register",
                json={"name": "bench"},
                headers={"Authorization": f"Bearer {registration}"},
            )
            answer.raise_for_status()
        finally:
            first.stop()
        cluster_id, credential = answer.json()["cluster_id"], answer.json()["credential"]
        with engine.begin() as conn:
            credentials = {
                f"node-{i}": issue_token(
                    conn, role="sensor", name=f"sensor-node-{i}", cluster_id=cluster_id, node_name=f"node-{i}"
                ).secret
                for i in range(NODES)
            }
        engine.dispose()
        sensors = Sensors(cluster_id, credential, credentials)
        codes = {"old": args.baseline_src, "new": args.src}
        figures: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        for round_no in range(args.rounds):
            for code in ("old", "new") if round_no % 2 == 0 else ("new", "old"):
                src = codes[code]
                env = {"PYTHONPATH": src} if src else {}
                service = ServiceProcess(work / f"{code}-{round_no}", pg.url, env=env).start()
                try:
                    got = measure(service, sensors, args.requests)
                finally:
                    service.stop()
                figures[code].append(got)
                line = {"bench": "ingest_cpu", "code": code, "src": src, "round": round_no, "cpu_ms_per_request": got}
                print(json.dumps({**line, "loadavg": [round(x, 2) for x in os.getloadavg()]}), flush=True)
        summary = {}
        for kind in figures["old"][0]:
            old = statistics.median(r[kind] for r in figures["old"])
            new = statistics.median(r[kind] for r in figures["new"])
            summary[kind] = {"old_ms": round(old, 2), "new_ms": round(new, 2), "new_over_old": round(new / old, 2)}
        print(
            json.dumps(
                {
                    "bench": "ingest_cpu",
                    "medians": summary,
                    "requests": args.requests,
                    "rounds": args.rounds,
                    "loadavg": [round(x, 2) for x in os.getloadavg()],
                    "workload": f"one service on PostgreSQL, {NODES} nodes' sensor credentials, requests one at a time",
                }
            ),
            flush=True,
        )
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
