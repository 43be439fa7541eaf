"""Controller sync benchmark: test API server -> `vigil controller` -> `vigil service`, three processes.

Workload (stated in every JSON line under "workload"):
- N nodes cloned from the real Node objects in ../shared/data/k8s/nodes (AKS, EKS, GKE, ...), renamed;
- M pods cloned from the real Pod objects in ../shared/data/k8s/pods (each ~3-8 KB of JSON as a
  real API server serves it), one template per owner kind, plus a sidecar container each, spread
  over 20 namespaces; owners: Deployments (via ReplicaSets), StatefulSets, DaemonSets, CronJobs
  (via Jobs), 20 pods each, and bare pods; one image digest per workload;
  `--shape minimal` uses ~1 KB synthetic pods and nodes instead.
- the test API server runs as `vigil dev kube-api --load DIR` (TLS, bearer token), the service as
  `vigil service` (SQLite in a temp dir, or `--database postgresql`: a throwaway PostgreSQL), the
  controller as `vigil controller`: each its own process, as deployed.

Figures:
- initial_sync: wall time from starting the controller process until the service reports every
  node and pod of the cluster (polled every 0.1 s through GET /api/v1/clusters, whose counts are
  two COUNT queries; a snapshot is applied in one transaction, so the counts jump from 0 to all);
  then, untimed, the full pod list is checked against the API server's truth (pod, workload,
  every container's kind, name and digest).
- churn: pod label updates PATCHed to the API server at a steady rate, each pod once, in workload
  order; lag = from just before the PATCH is sent until the service lists that pod with that
  label value or a later one (polled every 0.1 s, only the workloads with changes outstanding).
- controller_rss: the controller's peak resident set (VmHWM), over sync and churn.
- cpu: CPU seconds each process spent during the initial sync.
Usage: python bench/controller_sync.py [--nodes 1000] [--pods 10000] [--rate 100] [--seconds 10]
       [--shape real|minimal] [--database sqlite|postgresql]
       [--controller-src DIR]  run the controller from another source tree, e.g. a baseline made with
                               `mkdir /tmp/head && git archive HEAD src | tar -x -C /tmp/head`
       [--profile FILE]        run the controller under py-spy (collapsed stacks)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "k8s"
NAMESPACES = 20
PODS_PER_WORKLOAD = 20
VIGIL = [sys.executable, "-m", "vigil.cli"]
_HEX64 = re.compile(r"[0-9a-f]{64}")

# Owner kind -> (top kind, intermediate kind or None, real pod template)
OWNER_SHAPES = [
    ("Deployment", "ReplicaSet", "deployment.json"),
    ("StatefulSet", None, "statefulset.json"),
    ("DaemonSet", None, "daemonset.json"),
    ("CronJob", "Job", "cronjob.json"),
    ("Pod", None, "podstatusrunning.json"),
]
API_VERSION = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "CronJob": "batch/v1",
    "Job": "batch/v1",
}


def emit(step: str, workload: dict, **figures) -> None:
    print(json.dumps({"bench": "controller_sync", "step": step, **figures, "workload": workload}), flush=True)


# ---- the cluster --------------------------------------------------------------------------------
class Cluster:
    def __init__(self) -> None:
        self.objects: list[dict] = []
        self.nodes: list[str] = []
        # (namespace, pod name) -> (workload kind, workload name, sorted (container kind, name, digest))
        self.expected: dict[tuple[str, str], tuple[str, str, tuple]] = {}
        self.order: list[tuple[str, str]] = []  # pods in workload order (the churn order)
        self.json_bytes = 0


def _templates(shape: str) -> tuple[dict[str, dict], list[dict]]:
    if shape == "minimal":
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "t", "namespace": "default"},
            "spec": {"nodeName": "x", "containers": [{"name": "app", "image": "registry.example/app:1"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "app",
                        "image": "registry.example/app:1",
                        "imageID": "registry.example/app@sha256:" + "0" * 64,
                        "restartCount": 0,
                        "containerID": "containerd://" + "0" * 64,
                        "state": {"running": {}},
                    }
                ],
            },
        }
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "t"},
            "status": {
                "nodeInfo": {
                    "kernelVersion": "6.1.0",
                    "osImage": "Debian",
                    "architecture": "amd64",
                    "containerRuntimeVersion": "containerd://1.7",
                }
            },
        }
        return {t: pod for _, _, t in OWNER_SHAPES}, [node]
    if not (DATA / "pods").is_dir():
        sys.exit(f"real Kubernetes objects not found at {DATA}; use --shape minimal")
    pods = {t: json.loads((DATA / "pods" / t).read_text()) for _, _, t in OWNER_SHAPES}
    nodes = [json.loads(p.read_text()) for p in sorted((DATA / "nodes").glob("*.json"))]
    return pods, nodes


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _owner(kind: str, ns: str, name: str, uid: str, parent: dict | None) -> dict:
    meta: dict = {"name": name, "namespace": ns, "uid": uid, "labels": {"app": name}}
    if parent is not None:
        pm = parent["metadata"]
        meta["ownerReferences"] = [
            {
                "apiVersion": parent["apiVersion"],
                "kind": parent["kind"],
                "name": pm["name"],
                "uid": pm["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {"apiVersion": API_VERSION[kind], "kind": kind, "metadata": meta, "spec": {}}


def _pod(
    template: dict, rng: random.Random, ns: str, name: str, node: str, parent: dict | None, digest_hex: str
) -> dict:
    pod = copy.deepcopy(template)
    meta = pod["metadata"]
    for k in ("resourceVersion", "generateName", "ownerReferences", "managedFields"):
        meta.pop(k, None)
    meta.update(name=name, namespace=ns, uid=_uid(rng))
    meta["labels"] = dict(meta.get("labels") or {}, app=parent["metadata"]["name"] if parent else name)
    if parent is not None:
        pm = parent["metadata"]
        meta["ownerReferences"] = [
            {
                "apiVersion": parent["apiVersion"],
                "kind": parent["kind"],
                "name": pm["name"],
                "uid": pm["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    spec, status = pod.setdefault("spec", {}), pod.setdefault("status", {})
    spec["nodeName"] = node
    spec["containers"] = list(spec.get("containers") or []) + [
        {"name": "sidecar", "image": "registry.example/mesh/proxy:2.1", "resources": {}}
    ]
    statuses = list(status.get("containerStatuses") or [])
    statuses.append(
        {
            "name": "sidecar",
            "image": "registry.example/mesh/proxy:2.1",
            "imageID": "registry.example/mesh/proxy@sha256:" + "ab" * 32,
            "restartCount": 0,
            "containerID": "",
            "ready": True,
            "started": True,
            "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
        }
    )
    status["containerStatuses"] = statuses
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for s in status.get(key) or []:
            s["containerID"] = "containerd://" + f"{rng.getrandbits(256):064x}"
            if s["name"] != "sidecar" and s.get("imageID"):
                s["imageID"] = _HEX64.sub(digest_hex, s["imageID"])
    return pod


def _containers_expected(pod: dict) -> tuple:
    out = []
    for kind, spec_key, status_key in (
        ("init", "initContainers", "initContainerStatuses"),
        ("regular", "containers", "containerStatuses"),
        ("ephemeral", "ephemeralContainers", "ephemeralContainerStatuses"),
    ):
        statuses = {s["name"]: s for s in pod.get("status", {}).get(status_key) or []}
        for c in pod["spec"].get(spec_key) or []:
            m = _HEX64.search(statuses.get(c["name"], {}).get("imageID", ""))
            out.append((kind, c["name"], f"sha256:{m.group(0)}" if m else None))
    return tuple(sorted(out, key=lambda t: (t[0], t[1])))


def build_cluster(n_nodes: int, n_pods: int, shape: str, seed: int = 1) -> Cluster:
    rng = random.Random(seed)
    pod_templates, node_templates = _templates(shape)
    cluster = Cluster()
    for i in range(n_nodes):
        node = copy.deepcopy(node_templates[i % len(node_templates)])
        name = f"node-{i:05d}"
        node["metadata"] = dict(
            node["metadata"],
            name=name,
            uid=_uid(rng),
            labels=dict(node["metadata"].get("labels") or {}, **{"kubernetes.io/hostname": name}),
        )
        node["metadata"].pop("resourceVersion", None)
        node["metadata"].pop("ownerReferences", None)
        cluster.objects.append(node)
        cluster.nodes.append(name)
    made, w = 0, 0
    while made < n_pods:
        ns = f"ns{(w // len(OWNER_SHAPES)) % NAMESPACES}"
        top_kind, mid_kind, template = OWNER_SHAPES[w % len(OWNER_SHAPES)]
        parent = None
        if top_kind != "Pod":
            top = _owner(top_kind, ns, f"{top_kind.lower()}-{w}", _uid(rng), None)
            cluster.objects.append(top)
            parent = top
            if mid_kind:
                parent = _owner(mid_kind, ns, f"{top_kind.lower()}-{w}-{rng.getrandbits(32):08x}", _uid(rng), top)
                cluster.objects.append(parent)
        digest_hex = f"{rng.getrandbits(256):064x}"
        for j in range(1 if top_kind == "Pod" else PODS_PER_WORKLOAD):
            if made >= n_pods:
                break
            name = f"{top_kind.lower()}-{w}-{j}" if top_kind != "Pod" else f"pod-{w}"
            pod = _pod(
                pod_templates[template],
                rng,
                ns,
                name,
                cluster.nodes[made % len(cluster.nodes)] if cluster.nodes else "none",
                parent,
                digest_hex,
            )
            cluster.objects.append(pod)
            wname = name if top_kind == "Pod" else f"{top_kind.lower()}-{w}"
            cluster.expected[(ns, name)] = (top_kind, wname, _containers_expected(pod))
            cluster.order.append((ns, name))
            made += 1
        w += 1
    return cluster


# ---- processes ----------------------------------------------------------------------------------
def _free_port() -> int:
    from vigil.devtools.net import free_port

    return free_port()


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def _cli_secret(args: list[str]) -> str:
    out = subprocess.run(VIGIL + args, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1].strip()


def _cpu_seconds(proc: subprocess.Popen) -> float:
    try:
        t = psutil.Process(proc.pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return float("nan")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Lag:
    """Outstanding label changes per workload; a change is seen when the service shows it or a later one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, str, str], dict[str, list[tuple[int, float]]]] = {}
        self.lags: list[float] = []
        self.polls = 0

    def sent(self, wkey: tuple[str, str, str], pod: str, gen: int, at: float) -> None:
        with self.lock:
            self.pending.setdefault(wkey, {}).setdefault(pod, []).append((gen, at))

    def seen(self, wkey: tuple[str, str, str], items: list[dict], now: float) -> None:
        with self.lock:
            waiting = self.pending.get(wkey, {})
            for item in items:
                gen = (item.get("labels") or {}).get("bench-gen")
                if gen is None or item["name"] not in waiting:
                    continue
                left = []
                for g, at in waiting[item["name"]]:
                    if g <= int(gen):
                        self.lags.append(now - at)
                    else:
                        left.append((g, at))
                if left:
                    waiting[item["name"]] = left
                else:
                    del waiting[item["name"]]
            if not waiting:
                self.pending.pop(wkey, None)

    def outstanding(self) -> list[tuple[str, str, str]]:
        with self.lock:
            return list(self.pending)

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for pods in self.pending.values() for v in pods.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=100.0, help="pod updates per second during churn")
    ap.add_argument("--seconds", type=float, default=10.0, help="churn duration")
    ap.add_argument("--shape", choices=("real", "minimal"), default="real")
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--controller-arg", action="append", default=[], help="extra argument for `vigil controller`")
    ap.add_argument(
        "--controller-src",
        metavar="DIR",
        help="run the controller from this source tree (e.g. `git archive` of an older commit): a baseline",
    )
    ap.add_argument(
        "--profile", metavar="FILE", help="run the controller under py-spy record, writing collapsed stacks here"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    t0 = time.monotonic()
    cluster = build_cluster(args.nodes, args.pods, args.shape)
    (tmp / "objects").mkdir()
    blob = json.dumps({"apiVersion": "v1", "kind": "List", "items": cluster.objects}).encode()
    (tmp / "objects" / "cluster.json").write_bytes(blob)
    workload = {
        "nodes": args.nodes,
        "pods": len(cluster.expected),
        "namespaces": NAMESPACES,
        "owners": "Deployment/ReplicaSet, StatefulSet, DaemonSet, CronJob/Job x20 pods; bare pods",
        "containers": sum(len(e[2]) for e in cluster.expected.values()),
        "shape": args.shape,
        "objects_json_mb": round(len(blob) / 2**20, 1),
        "database": args.database,
        "processes": "kube-api, service, controller separate",
        "cpus": os.cpu_count(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "rate_per_s": args.rate,
        "churn_seconds": args.seconds,
    }
    del blob
    emit("populate", workload, seconds=round(time.monotonic() - t0, 2))

    procs: list[subprocess.Popen] = []
    pg = None
    try:
        # The API server, loaded from the folder.
        api_port, api_token = _free_port(), uuid.uuid4().hex
        kubeconfig = tmp / "kubeconfig"
        t0 = time.monotonic()
        api = subprocess.Popen(
            VIGIL
            + [
                "dev",
                "kube-api",
                "--port",
                str(api_port),
                "--load",
                str(tmp / "objects"),
                "--token",
                api_token,
                "--bookmark-interval",
                "5",
                "--history",
                "5000",
                "--write-kubeconfig",
                str(kubeconfig),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "kubeapi.log", "wb"),
        )
        procs.append(api)
        # The service, on its own store.
        data_dir = tmp / "service"
        store_args = ["--data-dir", str(data_dir)]
        if args.database == "postgresql":
            from vigil.devtools.postgres import ThrowawayPostgres

            pg = ThrowawayPostgres().start()
            store_args += ["--database-url", pg.url]
        admin = _cli_secret(["token", "create", "--role", "admin", "--name", "bench"] + store_args)
        registration = _cli_secret(["cluster", "token", "--ttl", "1h"] + store_args)
        svc_port = _free_port()
        svc_url = f"http://127.0.0.1:{svc_port}"
        svc = subprocess.Popen(
            VIGIL + ["service", "--port", str(svc_port), "--log-level", "warning"] + store_args,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "service.log", "wb"),
        )
        procs.append(svc)
        _wait_for(lambda: kubeconfig.exists() or api.poll() is not None, 300, "the API server to load")
        if api.poll() is not None:
            raise SystemExit(f"the API server exited: {(tmp / 'kubeapi.log').read_text()[-2000:]}")
        emit("kubeapi_load", workload, seconds=round(time.monotonic() - t0, 2))
        http = httpx.Client(base_url=svc_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        _wait_for(lambda: _get_ok(http, "/api/v1/clusters"), 60, "the service")

        # The controller: timing starts at its process start.
        cred = tmp / "cred.json"
        env = dict(os.environ, VIGIL_REGISTRATION_TOKEN=registration)
        if args.controller_src:
            env["PYTHONPATH"] = str(Path(args.controller_src).resolve())
            workload["controller_src"] = str(args.controller_src)
        base_cpu = {"kubeapi": _cpu_seconds(api), "service": _cpu_seconds(svc)}
        start = time.monotonic()
        spy = (
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                args.profile,
                "--",
            ]
            if args.profile
            else []
        )
        ctl = subprocess.Popen(
            spy
            + VIGIL
            + [
                "controller",
                "--service",
                svc_url,
                "--credential-file",
                str(cred),
                "--cluster-name",
                "bench",
                "--kubeconfig",
                str(kubeconfig),
                "--log-level",
                "WARNING",
            ]
            + args.controller_arg,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "controller.log", "wb"),
        )
        procs.append(ctl)
        cluster_id = _wait_for(
            lambda: json.loads(cred.read_text())["cluster_id"] if cred.exists() else None, 60, "registration"
        )
        registered = time.monotonic() - start

        def counts():
            if ctl.poll() is not None:
                raise SystemExit(f"the controller exited: {(tmp / 'controller.log').read_text()[-2000:]}")
            body = http.get("/api/v1/clusters", params={"limit": 1000}).json()
            c = next((c for c in body["items"] if c["id"] == cluster_id), None)
            return c and c["pods"] == len(cluster.expected) and c["nodes"] == args.nodes

        deadline = time.monotonic() + 600
        while not counts():
            if time.monotonic() > deadline:
                raise SystemExit("the service did not get every pod within 600 s")
            time.sleep(0.1)
        sync = time.monotonic() - start
        cpu = {
            "controller": round(_cpu_seconds(ctl), 2),
            "kubeapi": round(_cpu_seconds(api) - base_cpu["kubeapi"], 2),
            "service": round(_cpu_seconds(svc) - base_cpu["service"], 2),
        }
        mismatches = verify(http, cluster_id, cluster)
        emit(
            "initial_sync",
            workload,
            seconds=round(sync, 2),
            registered_after_s=round(registered, 2),
            cpu_seconds=cpu,
            verified=not mismatches,
            mismatches=mismatches[:5],
            aim_seconds=10,
        )

        before = {"controller": _cpu_seconds(ctl), "service": _cpu_seconds(svc)}
        churn(
            args,
            cluster,
            http,
            cluster_id,
            api_port,
            api_token,
            kubeconfig,
            workload,
            lambda: {k: round(_cpu_seconds(p) - before[k], 2) for k, p in (("controller", ctl), ("service", svc))},
        )
        pid = psutil.Process(ctl.pid).children()[0].pid if args.profile else ctl.pid
        emit("controller_rss", workload, peak_mb=round(_peak_rss_mb(pid), 1), aim_mb=300)
    finally:
        for p in reversed(procs):
            if args.profile and p is procs[-1] and len(procs) == 3:
                p.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT and stops the controller
                p.wait(60)
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if pg is not None:
            pg.stop()


def _get_ok(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path).status_code == 200
    except httpx.HTTPError:
        return False


def verify(http: httpx.Client, cluster_id: str, cluster: Cluster) -> list[str]:
    """Differences between the service's pods and the API server's (empty when exact)."""
    got: dict[tuple[str, str], tuple] = {}
    after = None
    while True:
        params = {"cluster": cluster_id, "limit": 1000, **({"after": after} if after else {})}
        body = http.get("/api/v1/pods", params=params).json()
        for p in body["items"]:
            cs = tuple(
                sorted(((c["kind"], c["name"], c["image_digest"]) for c in p["containers"]), key=lambda t: (t[0], t[1]))
            )
            got[(p["namespace"], p["name"])] = (p["workload"]["kind"], p["workload"]["name"], cs)
        after = body.get("next")
        if not after:
            break
    out = [f"missing {k}" for k in cluster.expected if k not in got]
    out += [f"unexpected {k}" for k in got if k not in cluster.expected]
    out += [f"{k}: {got[k]} != {v}" for k, v in cluster.expected.items() if k in got and got[k] != v]
    return out


def churn(
    args,
    cluster: Cluster,
    http: httpx.Client,
    cluster_id: str,
    api_port: int,
    api_token: str,
    kubeconfig: Path,
    workload: dict,
    cpu_used,
) -> None:
    import base64

    import yaml

    ca = base64.b64decode(
        yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["certificate-authority-data"]
    )
    (kubeconfig.parent / "ca.pem").write_bytes(ca)
    kube = httpx.Client(
        base_url=f"https://127.0.0.1:{api_port}",
        verify=str(kubeconfig.parent / "ca.pem"),
        headers={"Authorization": f"Bearer {api_token}", "Content-Type": "application/merge-patch+json"},
        timeout=30,
    )
    lag = Lag()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() or lag.count():
            for wkey in lag.outstanding():
                ns, kind, name = wkey
                body = http.get(
                    "/api/v1/pods",
                    params={
                        "cluster": cluster_id,
                        "namespace": ns,
                        "workload_kind": kind,
                        "workload_name": name,
                        "limit": 1000,
                    },
                ).json()
                lag.seen(wkey, body["items"], time.monotonic())
                lag.polls += 1
            time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    total = int(args.rate * args.seconds)
    interval = 1.0 / args.rate
    t_start = time.monotonic()
    late = 0
    for i in range(total):
        ns, name = cluster.order[i % len(cluster.order)]
        kind, wname, _ = cluster.expected[(ns, name)]
        lag.sent((ns, kind, wname), name, i, time.monotonic())
        resp = kube.patch(
            f"/api/v1/namespaces/{ns}/pods/{name}", content=json.dumps({"metadata": {"labels": {"bench-gen": str(i)}}})
        )
        resp.raise_for_status()
        delay = t_start + (i + 1) * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
    achieved = total / (time.monotonic() - t_start)
    done.set()
    poller.join(120)
    lags = sorted(lag.lags)
    pick = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 3) if lags else None  # noqa: E731
    emit(
        "churn",
        workload,
        updates=total,
        achieved_rate_per_s=round(achieved, 1),
        observed=len(lags),
        lag_p50_s=pick(0.5),
        lag_p99_s=pick(0.99),
        lag_max_s=round(lags[-1], 3) if lags else None,
        service_polls=lag.polls,
        cpu_seconds=cpu_used(),
        aim_p99_s=2,
    )


if __name__ == "__main__":
    main()
