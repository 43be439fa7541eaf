"""Scenarios end to end: real client library -> test API server (HTTPS); controller -> live service (HTTP).

In each, the service's inventory, read through its API, must equal the API server's
objects afterwards: full sets of nodes, pods and workloads.
"""

from __future__ import annotations

import json
import stat
import uuid

import pytest

from vigil.devtools.kubeapi import KubeAPIServer
from vigil.devtools.kubeapi.resources import BY_KIND

from .conftest import k8s_objects, wait_until


def service_inventory(svc, cluster_id: str) -> dict:
    pods = svc.list_all("/api/v1/pods", cluster=cluster_id)
    return {
        "nodes": {n["name"] for n in svc.list_all("/api/v1/nodes", cluster=cluster_id)},
        "workloads": {
            (w["namespace"], w["kind"], w["name"]) for w in svc.list_all("/api/v1/workloads", cluster=cluster_id)
        },
        "pods": {(p["namespace"], p["name"], p["uid"], p["workload"]["kind"], p["workload"]["name"]) for p in pods},
    }


def api_inventory(server: KubeAPIServer, workloads: set, pod_workloads: dict) -> dict:
    """The API server's objects, with the workloads the test expects for them."""
    store = server.store
    pods = store.objects(BY_KIND[("v1", "Pod")])
    return {
        "nodes": {n["metadata"]["name"] for n in store.objects(BY_KIND[("v1", "Node")])},
        "workloads": workloads,
        "pods": {
            (
                p["metadata"]["namespace"],
                p["metadata"]["name"],
                p["metadata"]["uid"],
                *pod_workloads[p["metadata"]["name"]],
            )
            for p in pods
        },
    }


def converge(svc, rc, server, workloads, pod_workloads, timeout=20):
    want = api_inventory(server, workloads, pod_workloads)
    wait_until(
        lambda: service_inventory(svc, rc.cluster_id) == want,
        timeout,
        f"the service to hold {json.dumps({k: sorted(map(str, v)) for k, v in want.items()})}",
    )


def owner(kind, name, api_version, parent=None, ns="default", labels=None, **spec):
    meta = {"name": name, "namespace": ns, "uid": str(uuid.uuid4()), "labels": labels or {}}
    if parent is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": parent["apiVersion"],
                "kind": parent["kind"],
                "name": parent["metadata"]["name"],
                "uid": parent["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec}


def pod_of(name, parent=None, ns="default", image="registry.example/app:1", node="n1"):
    p = owner("Pod", name, "v1", parent, ns)
    p["spec"] = {"nodeName": node, "containers": [{"name": "app", "image": image}]}
    p["status"] = {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "app",
                "image": image,
                "imageID": f"registry.example/app@sha256:{uuid.uuid4().hex * 2}",
                "containerID": f"containerd://{uuid.uuid4().hex * 2}",
                "restartCount": 0,
                "state": {"running": {}},
            }
        ],
    }
    return p


def real_owner_for(pod: dict, parent: dict | None = None) -> dict:
    ref = pod["metadata"]["ownerReferences"][0]
    api_version = {"ReplicaSet": "apps/v1", "DaemonSet": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}[
        ref["kind"]
    ]
    o = owner(ref["kind"], ref["name"], api_version, parent, pod["metadata"]["namespace"])
    o["metadata"]["uid"] = ref["uid"]
    return o


@pytest.fixture
def real_cluster(kubeapi):
    """The real Pod and Node objects, with owners matching their ownerReferences (uids included)."""
    pods = k8s_objects("pods")
    store = kubeapi.store
    for n in k8s_objects("nodes").values():
        store.apply(n)
    nginx_dep = owner("Deployment", "nginx", "apps/v1")
    scheduler = owner("CronJob", "kubevuln-scheduler", "batch/v1", ns="kubescape")
    store.apply(nginx_dep)
    store.apply(scheduler)
    store.apply(real_owner_for(pods["deployment.json"], nginx_dep))
    store.apply(real_owner_for(pods["cronjob.json"], scheduler))
    for name in ("daemonset.json", "statefulset.json", "jobPod.json"):
        store.apply(real_owner_for(pods[name]))
    store.apply(pods["deploymentWithemptyLabels.json"])
    for name in (
        "cronjob.json",
        "daemonset.json",
        "deployment.json",
        "jobPod.json",
        "podstatusrunning.json",
        "statefulset.json",
    ):
        store.apply(pods[name])
    return pods


REAL_WORKLOADS = {
    ("default", "Deployment", "nginx"),
    ("default", "Deployment", "my-deployment"),
    ("default", "Job", "nginx-job"),
    ("default", "StatefulSet", "web"),
    ("default", "Pod", "nginx"),
    ("kubescape", "DaemonSet", "node-agent"),
    ("kubescape", "CronJob", "kubevuln-scheduler"),
}
REAL_POD_WORKLOADS = {
    "nginx-84f5585d68-42mxd": ("Deployment", "nginx"),
    "kubevuln-scheduler-28677846-pdblz": ("CronJob", "kubevuln-scheduler"),
    "node-agent-4l822": ("DaemonSet", "node-agent"),
    "web-0": ("StatefulSet", "web"),
    "nginx-job-88b9z": ("Job", "nginx-job"),
    "nginx": ("Pod", "nginx"),
}


def test_real_objects_reach_the_service_exactly(live_service, kubeapi, real_cluster, start_controller):
    rc = start_controller(live_service)
    converge(live_service, rc, kubeapi, REAL_WORKLOADS, REAL_POD_WORKLOADS)
    pods = {p["name"]: p for p in live_service.list_all("/api/v1/pods", cluster=rc.cluster_id)}
    dep = {(c["kind"], c["name"]): c for c in pods["nginx-84f5585d68-42mxd"]["containers"]}
    assert sorted(dep) == [("ephemeral", "abc"), ("init", "bla"), ("regular", "nginx")]
    assert (
        dep[("regular", "nginx")]["image"]
        == "nginx@sha256:f7988fb6c02e0ce69257d9bd9cf37ae20a60f1df7563c3a2a6abe24160306b8d"
    )
    assert (
        dep[("regular", "nginx")]["image_digest"]
        == "sha256:f7988fb6c02e0ce69257d9bd9cf37ae20a60f1df7563c3a2a6abe24160306b8d"
    )
    assert (
        dep[("regular", "nginx")]["container_id"]
        == "docker://f41bb9e0b603517517603bab82762e33a95fb5f8fad62c9152089875e08e0b38"
    )
    (web,) = pods["web-0"]["containers"]
    assert (web["image"], web["image_digest"]) == (
        "registry.k8s.io/nginx-slim:0.24",
        "sha256:0e3657b75574b38c98c9ea0cc5a90a24352515b0237035fa61dadd457fe4b426",
    )
    (agent,) = pods["node-agent-4l822"]["containers"]
    assert agent["image_digest"] == "sha256:09ee5c4e4833807cd63a726707a06cd9d4f69ed9b935b3651f541197df83ff1b"
    assert pods["node-agent-4l822"]["security"]["host_pid"] is True
    (job,) = pods["kubevuln-scheduler-28677846-pdblz"]["containers"]
    assert (job["image"], job["state"]) == ("quay.io/kubescape/http-request:v0.2.8", "terminated")
    nodes = {n["name"]: n for n in live_service.list_all("/api/v1/nodes", cluster=rc.cluster_id)}
    assert nodes["ip-1-1-1-1.eu-west-1.compute.internal"]["architecture"] == "arm64"
    assert nodes["ip-1-1-1-1.eu-west-1.compute.internal"]["container_runtime"] == "containerd://1.7.11"

    # The same-named pod replaced by another (mockPod.json: new uid), then one with no status at all.
    real = k8s_objects("pods")
    kubeapi.store.remove("v1", "Pod", "default", "nginx")
    kubeapi.store.apply(real["mockPod.json"])
    converge(live_service, rc, kubeapi, REAL_WORKLOADS, REAL_POD_WORKLOADS)
    kubeapi.store.remove("v1", "Pod", "default", "nginx")
    kubeapi.store.apply(real["podstatusnotpresent.json"])
    converge(live_service, rc, kubeapi, REAL_WORKLOADS, REAL_POD_WORKLOADS)
    (c,) = [p for p in live_service.list_all("/api/v1/pods", cluster=rc.cluster_id) if p["name"] == "nginx"][0][
        "containers"
    ]
    assert (c["image"], c["image_digest"], c["state"]) == ("nginx:1.15", None, "unknown")


def test_deployments_cronjobs_and_late_owners(live_service, kubeapi, start_controller, tmp_path):
    store = kubeapi.store
    store.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    rc = start_controller(live_service)
    converge(live_service, rc, kubeapi, set(), {})
    cred = json.loads((tmp_path / "cred.json").read_text())
    assert cred["cluster_id"] == rc.cluster_id and stat.S_IMODE((tmp_path / "cred.json").stat().st_mode) == 0o600

    # Create a Deployment -> ReplicaSet -> 2 pods; scale to 3; roll to a new ReplicaSet.
    dep = store.create(owner("Deployment", "web", "apps/v1", labels={"app": "web"}, replicas=2))
    rs1 = store.create(owner("ReplicaSet", "web-1", "apps/v1", dep))
    for i in range(2):
        store.create(pod_of(f"web-1-{i}", rs1))
    pw = {f"web-1-{i}": ("Deployment", "web") for i in range(3)}
    converge(live_service, rc, kubeapi, {("default", "Deployment", "web")}, pw)
    store.patch(
        BY_KIND[("apps/v1", "Deployment")], "default", "web", "application/merge-patch+json", {"spec": {"replicas": 3}}
    )
    store.create(pod_of("web-1-2", rs1))
    converge(live_service, rc, kubeapi, {("default", "Deployment", "web")}, pw)
    w = [w for w in live_service.list_all("/api/v1/workloads", cluster=rc.cluster_id) if w["name"] == "web"][0]
    assert (w["labels"], w["pods"]) == ({"app": "web"}, 3)

    # CronJob -> Job -> Pod; and a pod whose owners arrive after it.
    cj = store.create(owner("CronJob", "nightly", "batch/v1", schedule="0 0 * * *"))
    job = owner("Job", "nightly-1", "batch/v1", cj)
    store.create(job)
    store.create(pod_of("nightly-1-x", job))
    pw["nightly-1-x"] = ("CronJob", "nightly")
    late_dep = owner("Deployment", "late", "apps/v1")
    late_rs = owner("ReplicaSet", "late-1", "apps/v1", late_dep)
    store.create(pod_of("late-1-a", late_rs))
    pw["late-1-a"] = ("ReplicaSet", "late-1")
    workloads = {
        ("default", "Deployment", "web"),
        ("default", "CronJob", "nightly"),
        ("default", "ReplicaSet", "late-1"),
    }
    converge(live_service, rc, kubeapi, workloads, pw)
    store.create(late_rs)
    store.create(late_dep)
    pw["late-1-a"] = ("Deployment", "late")
    workloads = workloads - {("default", "ReplicaSet", "late-1")} | {("default", "Deployment", "late")}
    converge(live_service, rc, kubeapi, workloads, pw)

    # Delete the Deployment: the garbage collector takes its ReplicaSet and pods.
    store.remove("apps/v1", "Deployment", "default", "web")
    converge(live_service, rc, kubeapi, workloads - {("default", "Deployment", "web")}, pw)
    # The CronJob goes with orphaning: the Job is then the top of its pod.
    store.remove("batch/v1", "CronJob", "default", "nightly", propagation="Orphan")
    pw["nightly-1-x"] = ("Job", "nightly-1")
    converge(live_service, rc, kubeapi, {("default", "Deployment", "late"), ("default", "Job", "nightly-1")}, pw)
    assert rc.controller.stats.snapshots == 1 and rc.controller.stats.rejected == 0


def test_api_restart_mid_stream(live_service, kubeapi, start_controller):
    store = kubeapi.store
    store.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    ds = store.create(owner("DaemonSet", "agent", "apps/v1"))
    for i in range(4):
        store.create(pod_of(f"agent-{i}", ds))
    pw = {f"agent-{i}": ("DaemonSet", "agent") for i in range(8)}
    rc = start_controller(live_service)
    converge(live_service, rc, kubeapi, {("default", "DaemonSet", "agent")}, pw)
    lists_before = sum(i.lists for i in rc.controller.informers)
    assert kubeapi.drop_watches() == 9  # every informer's stream is cut
    store.remove("v1", "Pod", "default", "agent-0")
    for i in range(4, 8):
        store.create(pod_of(f"agent-{i}", ds))
    store.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}})
    converge(live_service, rc, kubeapi, {("default", "DaemonSet", "agent")}, pw)
    wait_until(
        lambda: sum(i.lists for i in rc.controller.informers) >= lists_before + 9, 10, "every informer to relist"
    )
    assert rc.controller.stats.snapshots >= 2
    assert all(i.relist_reasons for i in rc.controller.informers)


def test_410_after_a_long_disconnect(live_service, kubeapi, start_controller):
    store = kubeapi.store
    for i in range(3):
        store.create(pod_of(f"solo-{i}"))
    pw = {f"solo-{i}": ("Pod", f"solo-{i}") for i in range(6)}
    rc = start_controller(live_service, watch_timeout=2)
    converge(live_service, rc, kubeapi, {("default", "Pod", f"solo-{i}") for i in range(3)}, pw)
    pods_informer = [i for i in rc.controller.informers if i.kind.kind == "Pod"][0]
    lists_before = pods_informer.lists
    store.stall_watches()  # the streams stay open, nothing arrives: a partition
    store.remove("v1", "Pod", "default", "solo-0")
    for i in range(3, 6):
        store.create(pod_of(f"solo-{i}"))
    store.compact()  # meanwhile the server forgot the history the controller would resume from
    want = {("default", "Pod", f"solo-{i}") for i in range(1, 6)}
    converge(live_service, rc, kubeapi, want, pw)
    assert pods_informer.lists == lists_before + 1
    assert pods_informer.relist_reasons == ["gone"]  # resumed from a compacted resourceVersion: 410
    assert any(("/api/v1/pods" in path and "watch=true" in path) for _, path in kubeapi.app.requests)


def test_restart_reuses_the_credential_file(live_service, kubeapi, start_controller, tmp_path):
    store = kubeapi.store
    store.create(pod_of("a"))
    first = start_controller(live_service, name="keep")
    converge(live_service, first, kubeapi, {("default", "Pod", "a")}, {"a": ("Pod", "a"), "b": ("Pod", "b")})
    first.stop()
    store.create(pod_of("b"))
    second = start_controller(live_service, name="keep")
    assert second.cluster_id == first.cluster_id
    converge(
        live_service,
        second,
        kubeapi,
        {("default", "Pod", "a"), ("default", "Pod", "b")},
        {"a": ("Pod", "a"), "b": ("Pod", "b")},
    )
