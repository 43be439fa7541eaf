"""Benchmark: inventory ingest through the real HTTP API, on SQLite and PostgreSQL.

Workload: one snapshot of 1,000 nodes / 10,000 pods / 20,000 containers / 2,000
images (gzip, as a controller sends it), then 1,000 deltas one request each (pod
restarts and replacements). The service runs as its own process (`vigil service`);
its peak RSS is read from /proc/<pid>/status (VmHWM). Baseline in the same run:
the time to parse and validate the same snapshot body without storing it, so the
ratio says what the store costs on top of the wire.

Prints one JSON line per (backend, phase). Usage:
    .venv/bin/python bench/ingest_inventory.py [--backends sqlite,postgresql] [--pods 10000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from vigil.devtools.inventory import synthetic_deltas, synthetic_snapshot
from vigil.devtools.net import free_port, wait_for_port
from vigil.devtools.postgres import ThrowawayPostgres
from vigil.service.store.db import create_store_engine, migrate
from vigil.service.store.tokens import issue_token
from vigil.wire.inventory import InventorySnapshot


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# Starts the service with SQLite's synchronous mode overridden, for the NORMAL-vs-FULL comparison.
_SERVICE_WITH_SYNCHRONOUS = (
    "import sys, vigil.service.store.db as db; db.SQLITE_SYNCHRONOUS = sys.argv.pop(1); "
    "from vigil.cli import main; sys.argv[0] = 'vigil'; main()"
)


def run_backend(name: str, url: str, args, synchronous: str | None = None) -> list[dict]:
    engine = create_store_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        reg = issue_token(conn, role="registration", name="bench").secret
    engine.dispose()
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="vigil-bench-")
    launcher = ["-c", _SERVICE_WITH_SYNCHRONOUS, synchronous] if synchronous else ["-m", "vigil.cli"]
    proc = subprocess.Popen(
        [
            sys.executable,
            *launcher,
            "service",
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            "--database-url",
            url,
            "--log-level",
            "warning",
            *args.service_arg,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out = []
    try:
        wait_for_port(port, 60)
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base, timeout=300)
        r = client.post("/api/v1/clusters/register", json={"name": "bench"}, headers={"Authorization": f"Bearer {reg}"})
        r.raise_for_status()
        cid, cred = r.json()["cluster_id"], r.json()["credential"]
        auth = {"Authorization": f"Bearer {cred}", "Content-Type": "application/json"}

        snap = synthetic_snapshot(
            cid, nodes=args.nodes, pods=args.pods, images=args.images, containers_per_pod=2, batch_id="bench-snap"
        )
        raw = orjson.dumps(snap.model_dump(mode="json"))
        body = gzip.compress(raw, 6)
        rss_before = peak_rss_mb(proc.pid)

        t0 = time.perf_counter()
        InventorySnapshot.model_validate_json(gzip.decompress(body))
        validate_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        r = client.post("/api/v1/ingest/inventory", content=body, headers={**auth, "Content-Encoding": "gzip"})
        snapshot_s = time.perf_counter() - t0
        r.raise_for_status()
        counts = r.json()["counts"]
        out.append(
            {
                "bench": "ingest_inventory",
                "backend": name,
                "phase": "snapshot",
                "sqlite_synchronous": synchronous,
                "workload": {
                    "nodes": args.nodes,
                    "pods": args.pods,
                    "containers": counts["containers"],
                    "images": args.images,
                },
                "body_bytes": len(raw),
                "gzip_bytes": len(body),
                "seconds": round(snapshot_s, 3),
                "baseline_validate_seconds": round(validate_s, 3),
                "ratio_to_baseline": round(snapshot_s / validate_s, 2),
                "service_peak_rss_mb": round(peak_rss_mb(proc.pid), 1),
                "service_rss_before_mb": round(rss_before, 1),
            }
        )

        deltas = synthetic_deltas(snap, args.deltas)
        lat = []
        t0 = time.perf_counter()
        for d in deltas:
            t1 = time.perf_counter()
            r = client.post("/api/v1/ingest/inventory", content=d.model_dump_json(), headers=auth)
            lat.append(time.perf_counter() - t1)
            r.raise_for_status()
        total = time.perf_counter() - t0
        lat.sort()
        out.append(
            {
                "bench": "ingest_inventory",
                "backend": name,
                "phase": "deltas",
                "sqlite_synchronous": synchronous,
                "workload": {"deltas": args.deltas, "pods_per_delta": 1},
                "service_args": args.service_arg,
                "seconds": round(total, 3),
                "deltas_per_second": round(args.deltas / total, 1),
                "latency_ms_p50": round(statistics.median(lat) * 1000, 2),
                "latency_ms_p99": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2),
                "service_peak_rss_mb": round(peak_rss_mb(proc.pid), 1),
            }
        )
        # Check that what was sent is what is there: the pod count after all deltas.
        total_pods = 0
        after = None
        while True:
            params = {"cluster": cid, "limit": 1000}
            if after:
                params["after"] = after
            page = client.get(
                "/api/v1/pods",
                params=params,
                headers={"Authorization": f"Bearer {reg}"}
                if False
                else {"Authorization": f"Bearer {admin_token(url)}"},
            ).json()
            total_pods += len(page["items"])
            after = page["next"]
            if not after:
                break
        out.append(
            {
                "bench": "ingest_inventory",
                "backend": name,
                "phase": "check",
                "pods_in_service": total_pods,
                "pods_expected": args.pods,
            }
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def sqlite_synchronous_cost(by_mode: dict[str, list[dict]], sqlite_dir: str | None) -> dict:
    def phase(mode: str, name: str) -> dict:
        return next(r for r in by_mode[mode] if r["phase"] == name)

    full_d, normal_d = phase("FULL", "deltas"), phase("NORMAL", "deltas")
    full_s, normal_s = phase("FULL", "snapshot"), phase("NORMAL", "snapshot")
    return {
        "bench": "ingest_inventory",
        "backend": "sqlite",
        "phase": "synchronous_cost",
        "database_dir": sqlite_dir or tempfile.gettempdir(),
        "snapshot_seconds_full_over_normal": round(full_s["seconds"] / normal_s["seconds"], 2),
        "delta_p50_full_over_normal": round(full_d["latency_ms_p50"] / normal_d["latency_ms_p50"], 2),
        "deltas_per_second_full": full_d["deltas_per_second"],
        "deltas_per_second_normal": normal_d["deltas_per_second"],
        "deltas_per_second_full_over_normal": round(full_d["deltas_per_second"] / normal_d["deltas_per_second"], 2),
    }


_ADMIN: dict[str, str] = {}


def admin_token(url: str) -> str:
    if url not in _ADMIN:
        engine = create_store_engine(url)
        with engine.begin() as conn:
            _ADMIN[url] = issue_token(conn, role="viewer", name="bench-reader").secret
        engine.dispose()
    return _ADMIN[url]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--deltas", type=int, default=1000)
    ap.add_argument(
        "--sqlite-dir",
        default=None,
        help="where the SQLite databases live (default: the temp dir; fsync cost is the disk's)",
    )
    ap.add_argument(
        "--service-arg", action="append", default=[], help="extra argument for `vigil service` (repeatable)"
    )
    args = ap.parse_args()
    for backend in args.backends.split(","):
        if backend == "sqlite":
            # The shipped mode (FULL: every acknowledged commit synced) against NORMAL, same workload, same run.
            by_mode = {}
            for mode in ("FULL", "NORMAL"):
                tmp = tempfile.mkdtemp(prefix="vigil-bench-sqlite-", dir=args.sqlite_dir)
                by_mode[mode] = run_backend("sqlite", f"sqlite:///{tmp}/vigil.db", args, mode)
            rows = by_mode["FULL"] + by_mode["NORMAL"] + [sqlite_synchronous_cost(by_mode, args.sqlite_dir)]
        elif backend == "postgresql":
            pg = ThrowawayPostgres().start()
            try:
                rows = run_backend("postgresql", pg.url, args)
            finally:
                pg.stop()
        else:
            raise SystemExit(f"unknown backend {backend!r}: use sqlite and/or postgresql")
        for row in rows:
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
