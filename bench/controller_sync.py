"""Controller sync benchmark: test API server (1,000 nodes, 10,000 pods of mixed owners) -> controller -> service.

Workload: nodes n0..n999; 10,000 pods: Deployments (via ReplicaSets), StatefulSets,
DaemonSets, CronJob->Job chains and bare pods, spread over 20 namespaces. The controller
runs as its own process (`vigil.controller.cli`), so its peak RSS is its own.
Figures (JSON lines): initial sync wall time until the service lists every pod,
controller peak RSS, and for pod updates at a steady rate the end-to-end lag
(change in the API server -> visible through the service's API), p50/p99.
Usage: python bench/controller_sync.py [--nodes 1000] [--pods 10000] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

from vigil.devtools.kubeapi import KubeAPIServer
from vigil.devtools.kubeapi.resources import BY_KIND
from vigil.devtools.service import LiveService


def _owner(kind, api_version, ns, name, parent=None):
    meta = {"name": name, "namespace": ns, "uid": str(uuid.uuid4())}
    if parent:
        meta["ownerReferences"] = [{"apiVersion": parent["apiVersion"], "kind": parent["kind"], "name": parent["metadata"]["name"],
                                    "uid": parent["metadata"]["uid"], "controller": True}]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {}}


def _pod(ns, name, node, parent):
    p = _owner("Pod", "v1", ns, name, parent)
    digest = uuid.uuid4().hex * 2
    p["spec"] = {"nodeName": node, "containers": [{"name": "app", "image": f"registry.example/{ns}/app:1"},
                                                   {"name": "sidecar", "image": "registry.example/proxy:2"}]}
    p["status"] = {"phase": "Running", "containerStatuses": [
        {"name": c, "image": "x", "imageID": f"registry.example/app@sha256:{digest}", "restartCount": 0,
         "containerID": f"containerd://{uuid.uuid4().hex * 2}", "state": {"running": {}}} for c in ("app", "sidecar")]}
    return p


def populate(store, nodes: int, pods: int) -> list[tuple[str, str]]:
    for i in range(nodes):
        store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"},
                      "status": {"nodeInfo": {"kernelVersion": "6.1.0", "osImage": "Debian", "architecture": "amd64",
                                              "containerRuntimeVersion": "containerd://1.7"}}})
    names = []
    made = 0
    w = 0
    while made < pods:
        ns = f"ns{w % 20}"
        store.ensure_namespace(ns)
        kind = w % 5
        if kind == 0:
            top = store.create(_owner("Deployment", "apps/v1", ns, f"dep{w}"))
            parent = store.create(_owner("ReplicaSet", "apps/v1", ns, f"dep{w}-1", top))
        elif kind == 1:
            parent = store.create(_owner("StatefulSet", "apps/v1", ns, f"sts{w}"))
        elif kind == 2:
            parent = store.create(_owner("DaemonSet", "apps/v1", ns, f"ds{w}"))
        elif kind == 3:
            top = store.create(_owner("CronJob", "batch/v1", ns, f"cj{w}"))
            parent = store.create(_owner("Job", "batch/v1", ns, f"cj{w}-1", top))
        else:
            parent = None
        for j in range(1 if parent is None else 20):
            if made >= pods:
                break
            name = f"w{w}-{j}"
            store.create(_pod(ns, name, f"n{made % max(nodes, 1)}", parent))
            names.append((ns, name))
            made += 1
        w += 1
    return names


def service_pod_count(svc, cluster_id) -> int:
    return len(svc.list_all("/api/v1/pods", cluster=cluster_id))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    svc = LiveService(tmp / "data").start()
    api = KubeAPIServer(bookmark_interval=5).start()
    t0 = time.monotonic()
    names = populate(api.store, args.nodes, args.pods)
    print(json.dumps({"bench": "controller_sync", "step": "populate", "nodes": args.nodes, "pods": len(names),
                      "seconds": round(time.monotonic() - t0, 2)}), flush=True)
    kc = api.write_kubeconfig(tmp / "kubeconfig")
    env = dict(os.environ, VIGIL_REGISTRATION_TOKEN=svc.registration_token())
    proc = subprocess.Popen([sys.executable, "-c", "from vigil.controller.cli import app; app()", "--service", svc.url,
                             "--credential-file", str(tmp / "cred.json"), "--cluster-name", "bench", "--kubeconfig", str(kc),
                             "--log-level", "WARNING"], env=env)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        p = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                peak = max(peak, p.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    try:
        start = time.monotonic()
        while not (tmp / "cred.json").exists():
            time.sleep(0.05)
        cluster_id = json.loads((tmp / "cred.json").read_text())["cluster_id"]
        while service_pod_count(svc, cluster_id) < len(names):
            time.sleep(0.25)
        sync = time.monotonic() - start
        print(json.dumps({"bench": "controller_sync", "step": "initial_sync", "seconds": round(sync, 2),
                          "aim_seconds": 10}), flush=True)
        # Churn: relabel pods of one namespace at a steady rate; poll the service for each change.
        rt = BY_KIND[("v1", "Pod")]
        churn = [n for n in names if n[0] == "ns1"]
        lags: list[float] = []
        pending: dict[tuple[str, str], tuple[str, float]] = {}
        lock = threading.Lock()
        done = threading.Event()

        def poll():
            while not done.is_set() or pending:
                items = svc.list_all("/api/v1/pods", cluster=cluster_id, namespace="ns1")
                now = time.monotonic()
                seen = {(p["namespace"], p["name"]): p["labels"].get("gen") for p in items}
                with lock:
                    for key, (gen, at) in list(pending.items()):
                        if seen.get(key) == gen:
                            lags.append(now - at)
                            del pending[key]
                time.sleep(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        interval = 1.0 / args.rate
        total = int(args.rate * args.seconds)
        t_start = time.monotonic()
        for i in range(total):
            ns, name = churn[i % len(churn)]
            gen = str(i)
            with lock:
                pending[(ns, name)] = (gen, time.monotonic())
            api.store.patch(rt, ns, name, "application/merge-patch+json", {"metadata": {"labels": {"gen": gen}}})
            delay = t_start + (i + 1) * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        done.set()
        poller.join(60)
        lags.sort()
        pick = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 3) if lags else None
        print(json.dumps({"bench": "controller_sync", "step": "churn", "updates": total, "rate_per_s": args.rate,
                          "observed": len(lags), "lag_p50_s": pick(0.5), "lag_p99_s": pick(0.99), "aim_p99_s": 2}), flush=True)
        print(json.dumps({"bench": "controller_sync", "step": "controller_rss", "peak_mb": round(peak / 2**20, 1),
                          "aim_mb": 300}), flush=True)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)
        api.stop()
        svc.stop()


if __name__ == "__main__":
    main()
