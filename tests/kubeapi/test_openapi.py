"""OpenAPI and field validation on the test API server: kubectl validates, creates and applies
against it without --validate=false, as against kube-apiserver."""

from __future__ import annotations

import json
from pathlib import Path

from tests.kubeapi.test_kubeapi import api, client  # noqa: F401  (the fixture)
from tests.kubeapi.test_webhooks import kubectl

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx:1.27
"""
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - {{name: MODE, value: "{mode}"}}
{sidecar}"""
SIDECAR = """      - name: side
        image: busybox:1.36
"""


def test_openapi_v3_index_and_documents_as_kubectl_reads_them(api):  # noqa: F811
    c = client(api)
    index = c.get("/openapi/v3").json()
    assert set(index["paths"]) == {"api/v1", "apis/apps/v1", "apis/batch/v1", "apis/admissionregistration.k8s.io/v1"}
    url = index["paths"]["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    doc = c.get(url).json()
    assert doc["openapi"] == "3.0.0"
    pod = doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["spec"] == {
        "$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec",
        "description": pod["properties"]["spec"]["description"],
    }
    containers = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert (
        containers["type"],
        containers["x-kubernetes-patch-merge-key"],
        containers["x-kubernetes-patch-strategy"],
    ) == (
        "array",
        "name",
        "merge",
    )
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "kind": "Pod", "version": "v1"}
    assert {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}} in patch[
        "parameters"
    ]
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert "/api/v1/namespaces/{namespace}/pods/{name}/ephemeralcontainers" in doc["paths"]
    v2 = c.get("/openapi/v2", headers={"Accept": "application/json"})
    assert v2.status_code == 200 and v2.json()["swagger"] == "2.0"
    assert v2.json()["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    protobuf = c.get("/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert protobuf.status_code == 406


def test_kubectl_create_validates_on_the_server(api, tmp_path: Path):  # noqa: F811
    (tmp_path / "pod.yaml").write_text(POD)
    out = kubectl(api, tmp_path, "create", "-f", str(tmp_path / "pod.yaml"))
    assert (out.returncode, out.stdout, out.stderr) == (0, "pod/web created\n", "")
    posts = [path for method, path in api.app.requests if method == "POST"]
    assert posts == ["/api/v1/namespaces/default/pods?fieldManager=kubectl-create&fieldValidation=Strict"]
    bad = POD.replace(
        "    image: nginx:1.27\n", "    image: nginx:1.27\n    imagePullPolice: Always\n  hostNetwrk: true\n"
    )
    out = kubectl(api, tmp_path, "create", "-f", "-", stdin=bad.replace("name: web", "name: bad") + "extra: 1\n")
    assert out.returncode == 1
    assert out.stderr == (
        'Error from server (BadRequest): error when creating "STDIN": Pod in version "v1" cannot be handled as a Pod: '
        'strict decoding error: unknown field "extra", unknown field "spec.containers[0].imagePullPolice", '
        'unknown field "spec.hostNetwrk"\n'
    )
    assert client(api).get("/api/v1/namespaces/default/pods/bad").status_code == 404


def test_unknown_fields_are_dropped_with_a_warning_by_default_and_kept_where_the_schema_allows(api):  # noqa: F811
    c = client(api)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"any": "label"}, "annotations": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}}}], "nope": 1},
    }
    r = c.post("/api/v1/namespaces/default/pods", json=body)
    assert r.status_code == 201
    assert r.headers.get_list("Warning") == ['299 - "unknown field \\"spec.nope\\""']
    assert "nope" not in r.json()["spec"]
    assert r.json()["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    r = c.post(
        "/api/v1/namespaces/default/pods", params={"fieldValidation": "Ignore"}, json=dict(body, metadata={"name": "q"})
    )
    assert r.status_code == 201 and "Warning" not in r.headers and "nope" not in r.json()["spec"]


def _apply(api, tmp_path: Path, manifest: str):  # noqa: F811
    (tmp_path / "deploy.yaml").write_text(manifest)
    return kubectl(api, tmp_path, "apply", "-f", str(tmp_path / "deploy.yaml"))


def test_kubectl_apply_creates_then_strategic_merges(api, tmp_path: Path):  # noqa: F811
    out = _apply(api, tmp_path, DEPLOYMENT.format(replicas=2, mode="a", sidecar=SIDECAR))
    assert (out.returncode, out.stdout, out.stderr) == (0, "deployment.apps/web created\n", "")
    out = _apply(api, tmp_path, DEPLOYMENT.format(replicas=3, mode="b", sidecar=SIDECAR))
    assert (out.returncode, out.stdout, out.stderr) == (0, "deployment.apps/web configured\n", "")
    out = _apply(api, tmp_path, DEPLOYMENT.format(replicas=3, mode="b", sidecar=SIDECAR))
    assert (out.returncode, out.stdout) == (0, "deployment.apps/web unchanged\n")
    # Dropping the sidecar from the manifest deletes it ($patch: delete on the merge key).
    out = _apply(api, tmp_path, DEPLOYMENT.format(replicas=3, mode="b", sidecar=""))
    assert (out.returncode, out.stdout) == (0, "deployment.apps/web configured\n"), out.stderr
    deployment = client(api).get("/apis/apps/v1/namespaces/default/deployments/web").json()
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["generation"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"] == [
        {
            "name": "app",
            "image": "nginx:1.27",
            "ports": [{"containerPort": 80}],
            "env": [{"name": "MODE", "value": "b"}],
        }
    ]
    applied = json.loads(deployment["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["spec"]["replicas"] == 3
    patches = [path for method, path in api.app.requests if method == "PATCH"]
    assert (
        patches
        == [
            "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
        ]
        * 2
    )


def test_kubectl_explain_reads_the_schema(api, tmp_path: Path):  # noqa: F811
    out = kubectl(api, tmp_path, "explain", "deployment.spec.replicas")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:4] == ["GROUP:      apps", "KIND:       Deployment", "VERSION:    v1", ""]
    assert "FIELD: replicas <integer>" in out.stdout
