"""The test Kubernetes API server, over real HTTP (httpx) and with kubectl."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from vigil.devtools.kubeapi import KubeAPIServer, load_directory

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "k8s"


@pytest.fixture
def api():
    with KubeAPIServer(token="s3cret", bookmark_interval=0.3, history_size=50) as server:
        yield server


def client(server: KubeAPIServer, token: str | None = "s3cret") -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ca = server.cert.ca_pem.decode()
    import ssl

    ctx = ssl.create_default_context(cadata=ca)
    return httpx.Client(base_url=server.url, headers=headers, verify=ctx, timeout=10)


def pod(name: str, ns: str = "default", node: str = "n1", labels: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1.27"}]},
    }


def watch_lines(c: httpx.Client, path: str, until: int, **params) -> list[dict]:
    out = []
    with c.stream("GET", path, params={"watch": "true", **params}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line:
                out.append(json.loads(line))
            if len(out) >= until:
                break
    return out


def test_auth_required_with_status_401(api):
    for token in (None, "wrong"):
        r = client(api, token).get("/api/v1/pods")
        assert r.status_code == 401
        assert r.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
    assert client(api, None).get("/version").json()["gitVersion"].startswith("v1.31")


def test_discovery(api):
    c = client(api)
    assert c.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g["preferredVersion"]["groupVersion"] for g in c.get("/apis").json()["groups"]}
    assert groups == {
        "apps": "apps/v1",
        "batch": "batch/v1",
        "admissionregistration.k8s.io": "admissionregistration.k8s.io/v1",
    }
    core = {r["name"] for r in c.get("/api/v1").json()["resources"]}
    assert {"pods", "nodes", "namespaces", "replicationcontrollers", "pods/status", "pods/ephemeralcontainers"} <= core
    apps = {r["name"]: r for r in c.get("/apis/apps/v1").json()["resources"]}
    assert {"deployments", "replicasets", "statefulsets", "daemonsets", "deployments/scale"} <= set(apps)
    assert apps["deployments"]["verbs"] == [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
    assert {r["name"] for r in c.get("/apis/batch/v1").json()["resources"]} >= {"jobs", "cronjobs"}


def test_paginated_list_is_a_consistent_snapshot(api):
    c = client(api)
    for i in range(5):
        c.post("/api/v1/namespaces/default/pods", json=pod(f"p{i}")).raise_for_status()
    first = c.get("/api/v1/pods", params={"limit": 2}).json()
    assert [p["metadata"]["name"] for p in first["items"]] == ["p0", "p1"]
    assert first["metadata"]["remainingItemCount"] == 3
    assert "kind" not in first["items"][0]  # typed list items carry no kind, as from the real server
    c.post("/api/v1/namespaces/default/pods", json=pod("p15")).raise_for_status()
    c.delete("/api/v1/namespaces/default/pods/p3").raise_for_status()
    names, token = [], first["metadata"]["continue"]
    while token:
        page = c.get("/api/v1/pods", params={"limit": 2, "continue": token}).json()
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [p["metadata"]["name"] for p in page["items"]]
        token = page["metadata"].get("continue")
    assert names == ["p2", "p3", "p4"]  # the list's own revision: no p15, p3 still there


def test_continue_after_compaction_is_410_expired(api):
    c = client(api)
    for i in range(3):
        c.post("/api/v1/namespaces/default/pods", json=pod(f"p{i}")).raise_for_status()
    first = c.get("/api/v1/pods", params={"limit": 1}).json()
    c.post("/api/v1/namespaces/default/pods", json=pod("late")).raise_for_status()
    api.compact()
    r = c.get("/api/v1/pods", params={"limit": 1, "continue": first["metadata"]["continue"]})
    assert r.status_code == 410
    body = r.json()
    assert body["reason"] == "Expired" and body["message"].startswith("The provided continue parameter is too old")
    assert body["metadata"]["continue"]  # the inconsistent-continuation token


def test_selectors(api):
    c = client(api)
    c.post(
        "/api/v1/namespaces/default/pods", json=pod("a", node="n1", labels={"app": "web", "tier": "fe"})
    ).raise_for_status()
    c.post("/api/v1/namespaces/default/pods", json=pod("b", node="n2", labels={"app": "db"})).raise_for_status()
    c.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}
    ).raise_for_status()
    c.post("/api/v1/namespaces/other/pods", json=pod("c", ns="other", node="n1")).raise_for_status()

    def names(**params):
        return [p["metadata"]["name"] for p in c.get("/api/v1/pods", params=params).json()["items"]]

    assert names(fieldSelector="spec.nodeName=n1") == ["a", "c"]
    assert names(fieldSelector="spec.nodeName!=n1,metadata.namespace=default") == ["b"]
    assert names(fieldSelector="metadata.name=c") == ["c"]
    assert names(labelSelector="app in (web,db),!tier") == ["b"]
    assert names(labelSelector="app=web,tier") == ["a"]
    assert names(labelSelector="app notin (web)") == ["b", "c"]
    assert [p["metadata"]["name"] for p in c.get("/api/v1/namespaces/other/pods").json()["items"]] == ["c"]
    r = c.get("/api/v1/pods", params={"fieldSelector": "spec.image=x"})
    assert r.status_code == 400 and r.json()["message"] == "field label not supported: spec.image"


def test_writes_conflicts_patch_and_namespace_checks(api):
    c = client(api)
    created = c.post("/api/v1/namespaces/default/pods", json=pod("w")).json()
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert c.post("/api/v1/namespaces/default/pods", json=pod("w")).json()["message"] == 'pods "w" already exists'
    stale = dict(created, metadata=dict(created["metadata"], labels={"x": "1"}))
    assert c.put("/api/v1/namespaces/default/pods/w", json=stale).status_code == 200
    r = c.put("/api/v1/namespaces/default/pods/w", json=stale)
    assert r.status_code == 409 and "the object has been modified" in r.json()["message"]
    patched = c.patch(
        "/api/v1/namespaces/default/pods/w",
        content=json.dumps({"metadata": {"labels": {"y": "2", "x": None}}}),
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert patched["metadata"]["labels"] == {"y": "2"}
    r = c.post("/api/v1/namespaces/nope/pods", json=pod("q", ns="nope"))
    assert r.status_code == 404 and r.json()["message"] == 'namespaces "nope" not found'
    r = c.get("/api/v1/namespaces/default/pods/missing")
    assert r.status_code == 404 and r.json()["message"] == 'pods "missing" not found'
    status = c.put(
        "/api/v1/namespaces/default/pods/w/status", json={"metadata": {"name": "w"}, "status": {"phase": "Running"}}
    )
    assert status.json()["status"] == {"phase": "Running"} and status.json()["metadata"]["labels"] == {"y": "2"}


def test_scale_and_garbage_collection(api):
    c = client(api)
    d = c.post(
        "/apis/apps/v1/namespaces/default/deployments",
        json={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {}},
        },
    ).json()
    rs = c.post(
        "/apis/apps/v1/namespaces/default/replicasets",
        json={
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-1",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "uid": d["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {},
        },
    ).json()
    p = pod("web-1-a")
    p["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web-1",
            "uid": rs["metadata"]["uid"],
            "controller": True,
        }
    ]
    c.post("/api/v1/namespaces/default/pods", json=p).raise_for_status()
    scale = c.patch(
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        content=json.dumps({"spec": {"replicas": 3}}),
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    assert c.get("/apis/apps/v1/namespaces/default/deployments/web").json()["metadata"]["generation"] == 2
    c.delete("/apis/apps/v1/namespaces/default/deployments/web").raise_for_status()
    assert c.get("/apis/apps/v1/replicasets").json()["items"] == []
    assert c.get("/api/v1/pods").json()["items"] == []


def test_watch_events_bookmarks_and_selector_transitions(api):
    c = client(api)
    rv = c.get("/api/v1/pods").json()["metadata"]["resourceVersion"]
    c.post("/api/v1/namespaces/default/pods", json=pod("a", labels={"app": "web"})).raise_for_status()
    c.patch(
        "/api/v1/namespaces/default/pods/a",
        content=json.dumps({"metadata": {"labels": {"app": "other"}}}),
        headers={"Content-Type": "application/merge-patch+json"},
    ).raise_for_status()
    c.post("/api/v1/namespaces/default/pods", json=pod("b")).raise_for_status()
    c.delete("/api/v1/namespaces/default/pods/b").raise_for_status()
    events = watch_lines(c, "/api/v1/pods", 4, resourceVersion=rv)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "b"),
    ]
    assert events[0]["object"]["kind"] == "Pod"
    selected = watch_lines(c, "/api/v1/pods", 2, resourceVersion=rv, labelSelector="app=web")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in selected] == [("ADDED", "a"), ("DELETED", "a")]
    marks = watch_lines(c, "/api/v1/nodes", 1, resourceVersion=rv, allowWatchBookmarks="true")
    assert marks[0]["type"] == "BOOKMARK"
    assert int(marks[0]["object"]["metadata"]["resourceVersion"]) == api.store.resource_version


def test_watch_too_old_is_an_error_event_410(api):
    c = client(api)
    rv = c.get("/api/v1/pods").json()["metadata"]["resourceVersion"]
    for i in range(60):  # history holds 50 events
        c.post("/api/v1/namespaces/default/pods", json=pod(f"p{i}")).raise_for_status()
    (event,) = watch_lines(c, "/api/v1/pods", 1, resourceVersion=rv)
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    assert event["object"]["message"].startswith(f"too old resource version: {rv} (")


def test_drop_watches_cuts_streams(api):
    c = client(api)
    rv = c.get("/api/v1/pods").json()["metadata"]["resourceVersion"]
    import threading

    result = {}

    def run():
        try:
            result["events"] = watch_lines(c, "/api/v1/pods", 100, resourceVersion=rv)
        except httpx.HTTPError as exc:
            result["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 5
    while api.store.watcher_count == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.drop_watches() == 1
    t.join(5)
    assert not t.is_alive() and ("error" in result or len(result.get("events", [])) < 100)


def test_load_directory_of_real_objects(api):
    if not DATA.is_dir():
        pytest.skip(f"shared Kubernetes test objects missing at {DATA}")
    assert load_directory(api.store, DATA / "nodes") == 6
    names = [n["metadata"]["name"] for n in client(api).get("/api/v1/nodes").json()["items"]]
    assert names == sorted(json.loads(p.read_text())["metadata"]["name"] for p in (DATA / "nodes").glob("*.json"))


def _kubectl_env(api: KubeAPIServer, tmp_path: Path) -> dict:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    return dict(os.environ, KUBECONFIG=str(kc), HOME=str(tmp_path), KUBECACHEDIR=str(tmp_path / "cache"))


def test_kubectl_get_and_watch(api, tmp_path):
    env = _kubectl_env(api, tmp_path)
    api.store.create(pod("first"))
    out = subprocess.run(
        ["kubectl", "get", "pods", "-A", "-o", "json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in json.loads(out.stdout)["items"]] == [
        ("default", "first")
    ]
    proc = subprocess.Popen(
        ["kubectl", "get", "pods", "-w"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while api.store.watcher_count == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert api.store.watcher_count == 1, "kubectl never opened a watch"
        api.store.create(dict(pod("appeared"), status={"phase": "Running"}))
        time.sleep(1.0)
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=10)
    lines = [line.split() for line in stdout.splitlines()]
    assert lines[0][:3] == ["NAME", "READY", "STATUS"], stderr
    assert [columns[0] for columns in lines[1:]] == ["first", "appeared"]
    assert lines[2][2] == "Running"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_module_serves_a_folder(tmp_path):
    if not DATA.is_dir():
        pytest.skip(f"shared Kubernetes test objects missing at {DATA}")
    folder = tmp_path / "objs"
    folder.mkdir()
    shutil.copy(DATA / "pods" / "statefulset.json", folder)
    (folder / "rs.yaml").write_text(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r, namespace: team}\nspec: {}\n---\n"
        "apiVersion: v1\nkind: Node\nmetadata: {name: n9}\n"
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vigil.devtools.kubeapi",
            "--port",
            str(port),
            "--load",
            str(folder),
            "--token",
            "tok",
            "--plain-http",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == f"loaded 3 objects from {folder}"
        assert proc.stdout.readline().strip() == f"serving the Kubernetes API on http://127.0.0.1:{port}"
        h = {"Authorization": "Bearer tok"}
        pods = httpx.get(f"http://127.0.0.1:{port}/api/v1/pods", headers=h).json()["items"]
        assert [(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"]) for p in pods] == [
            ("default", "web-0", "58fd3633-e33d-4067-89aa-1ba99aa6e856")
        ]
        rs = httpx.get(f"http://127.0.0.1:{port}/apis/apps/v1/namespaces/team/replicasets", headers=h).json()["items"]
        assert [r["metadata"]["name"] for r in rs] == ["r"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_module_refuses_a_bad_folder(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    out = subprocess.run(
        [sys.executable, "-m", "vigil.devtools.kubeapi", "--load", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert f"error: {tmp_path / 'bad.json'}: not valid JSON" in out.stderr


def test_store_clone_is_deep_and_writes_yaml_timestamps_as_the_api_does():
    import datetime as dt

    from vigil.devtools.kubeapi.store import clone

    obj = {
        "metadata": {"creationTimestamp": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)},
        "spec": {"containers": [{"name": "a"}]},
    }
    copied = clone(obj)
    assert copied == {
        "metadata": {"creationTimestamp": "2024-05-01T12:00:00Z"},
        "spec": {"containers": [{"name": "a"}]},
    }
    copied["spec"]["containers"][0]["name"] = "b"
    assert obj["spec"]["containers"][0]["name"] == "a"
    odd = {1: ["x"]}  # YAML can give integer keys, which JSON cannot carry: still a deep copy
    odd_copy = clone(odd)
    assert odd_copy == odd and odd_copy[1] is not odd[1]
