"""Admission webhooks on the test API server, as kube-apiserver calls them: a real HTTPS webhook,
real kubectl, and the exact messages and outcomes of the Dynamic Admission Control docs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from tests.kubeapi.test_kubeapi import api, client, pod  # noqa: F401  (the fixture)
from tests.kubeapi.webhooks import SERVICE_HOST, WebhookServer, configuration, hook, patch_of

VWC = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
PODS = "/api/v1/namespaces/default/pods"
POD_YAML = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: app
    image: nginx:1.27
"""


@pytest.fixture
def webhook():
    with WebhookServer() as server:
        yield server


def url_client(webhook: WebhookServer, path: str) -> dict:
    return {"url": webhook.url + path, "caBundle": webhook.ca_bundle}


def register(api, kind: str, name: str, *hooks: dict) -> dict:  # noqa: F811
    path = VWC if kind == "ValidatingWebhookConfiguration" else MWC
    r = client(api).post(path, json=configuration(kind, name, *hooks))
    assert r.status_code == 201, r.text
    return r.json()


def kubectl(api, tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:  # noqa: F811
    kc = tmp_path / "kubeconfig"
    if not kc.exists():
        api.write_kubeconfig(kc)
    env = dict(os.environ, KUBECONFIG=str(kc), HOME=str(tmp_path), KUBECACHEDIR=str(tmp_path / "cache"))
    return subprocess.run(["kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)


def test_configurations_are_served_defaulted_and_validated(api):  # noqa: F811
    c = client(api)
    resources = {r["name"]: r for r in c.get("/apis/admissionregistration.k8s.io/v1").json()["resources"]}
    assert set(resources) == {"validatingwebhookconfigurations", "mutatingwebhookconfigurations"}
    assert resources["validatingwebhookconfigurations"]["namespaced"] is False
    stored = register(
        api,
        "MutatingWebhookConfiguration",
        "pin",
        {
            "name": "pin.vigil.test",
            "clientConfig": {"service": {"namespace": "vigil", "name": "admission", "path": "/mutate"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        },
    )
    assert stored["webhooks"] == [
        {
            "name": "pin.vigil.test",
            "clientConfig": {"service": {"namespace": "vigil", "name": "admission", "path": "/mutate", "port": 443}},
            "rules": [
                {
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                    "scope": "*",
                }
            ],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "namespaceSelector": {},
            "objectSelector": {},
            "timeoutSeconds": 10,
            "reinvocationPolicy": "Never",
        }
    ]
    assert [i["metadata"]["name"] for i in c.get(MWC).json()["items"]] == ["pin"]
    bad = configuration(
        "ValidatingWebhookConfiguration",
        "bad",
        {
            "name": "bad",
            "clientConfig": {"url": "http://127.0.0.1:1/x"},
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 31,
        },
    )
    r = c.post(VWC, json=bad)
    assert r.status_code == 422
    assert r.json()["message"] == (
        'ValidatingWebhookConfiguration.admissionregistration.k8s.io "bad" is invalid: ['
        'webhooks[0].name: Invalid value: "bad": should be a domain with at least three segments separated by dots, '
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun, "
        "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds, "
        "webhooks[0].clientConfig.url: Invalid value: \"http://127.0.0.1:1/x\": 'https' is the only allowed URL scheme]"
    )
    assert c.get(f"{VWC}/bad").status_code == 404


def test_denial_and_warnings_as_kubectl_prints_them(api, webhook, tmp_path):  # noqa: F811
    webhook.answers["/deny"] = lambda req: {
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": "image nginx:1.27 is not pinned"},
        "warnings": ['tag "1.27" is mutable'],
    }
    register(api, "ValidatingWebhookConfiguration", "vigil", hook("deny.vigil.test", url_client(webhook, "/deny")))
    r = client(api).post(PODS, json=pod("web"))
    assert r.status_code == 403
    assert r.headers.get_list("Warning") == ['299 - "tag \\"1.27\\" is mutable"']
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'admission webhook "deny.vigil.test" denied the request: image nginx:1.27 is not pinned',
        "reason": "Forbidden",
        "code": 403,
    }
    (tmp_path / "pod.yaml").write_text(POD_YAML)
    out = kubectl(api, tmp_path, "create", "-f", str(tmp_path / "pod.yaml"))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        'Warning: tag "1.27" is mutable',
        f'Error from server (Forbidden): error when creating "{tmp_path / "pod.yaml"}": admission webhook '
        '"deny.vigil.test" denied the request: image nginx:1.27 is not pinned',
    ]
    # Without a code or reason: 400 and no reason, which kubectl prints without parentheses.
    webhook.answers["/deny"] = lambda req: {"allowed": False, "status": {"message": "no"}}
    out = kubectl(api, tmp_path, "create", "-f", "-", stdin=POD_YAML)
    assert out.stderr.strip() == (
        'Error from server: error when creating "STDIN": admission webhook "deny.vigil.test" denied the request: no'
    )
    webhook.answers["/deny"] = lambda req: {"allowed": True, "warnings": ["pinned by digest is better"]}
    out = kubectl(api, tmp_path, "create", "-f", "-", stdin=POD_YAML)
    assert (out.returncode, out.stdout, out.stderr) == (0, "pod/web created\n", "Warning: pinned by digest is better\n")
    assert [p["metadata"]["name"] for p in client(api).get(PODS).json()["items"]] == ["web"]


def test_mutation_then_validation_with_the_review_kube_apiserver_sends(api, webhook, tmp_path):  # noqa: F811
    webhook.answers["/label"] = lambda req: (
        patch_of([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]) | {"allowed": True}
    )
    webhook.answers["/pin"] = lambda req: (
        patch_of([{"op": "replace", "path": "/spec/containers/0/image", "value": "nginx@sha256:" + "a" * 64}])
        | {"allowed": True}
    )
    # Configurations run in name order: "a-label" before "b-pin"; validation sees the result of both.
    register(api, "MutatingWebhookConfiguration", "b-pin", hook("pin.vigil.test", url_client(webhook, "/pin")))
    register(api, "MutatingWebhookConfiguration", "a-label", hook("label.vigil.test", url_client(webhook, "/label")))
    register(api, "ValidatingWebhookConfiguration", "check", hook("check.vigil.test", url_client(webhook, "/check")))
    out = kubectl(api, tmp_path, "create", "-f", "-", stdin=POD_YAML)
    assert out.returncode == 0, out.stderr
    stored = client(api).get(f"{PODS}/web").json()
    assert stored["metadata"]["labels"] == {"app": "web", "mutated": "yes"}
    assert stored["spec"]["containers"][0]["image"] == "nginx@sha256:" + "a" * 64
    assert [path for path, _ in webhook.reviews] == ["/label?timeout=10s", "/pin?timeout=10s", "/check?timeout=10s"]
    label, pin, check = (req for _, req in webhook.reviews)
    assert label["object"]["metadata"]["labels"] == {"app": "web"}
    assert pin["object"]["metadata"]["labels"] == {"app": "web", "mutated": "yes"}
    assert check["object"]["spec"]["containers"][0]["image"] == "nginx@sha256:" + "a" * 64
    assert check["object"]["metadata"]["uid"] == stored["metadata"]["uid"]
    assert {k: v for k, v in check.items() if k not in ("uid", "object")} == {
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "web",
        "namespace": "default",
        "operation": "CREATE",
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "oldObject": None,
        "dryRun": False,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-create"},
    }
    assert len({req["uid"] for _, req in webhook.reviews}) == 3
    # An update: UPDATE with the stored object as oldObject; a delete: DELETE with no object.
    webhook.reviews.clear()
    out = kubectl(api, tmp_path, "label", "pod", "web", "tier=fe")
    assert out.returncode == 0, out.stderr
    assert [(req["operation"], req["oldObject"]["metadata"]["labels"]) for _, req in webhook.reviews] == [
        ("UPDATE", {"app": "web", "mutated": "yes"})
    ] * 3
    assert webhook.reviews[2][1]["object"]["metadata"]["labels"] == {"app": "web", "mutated": "yes", "tier": "fe"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failure_policy_ignore_admits_and_fail_refuses_when_the_webhook_is_down(api, tmp_path):  # noqa: F811
    port = _closed_port()
    down = {"url": f"https://127.0.0.1:{port}/validate"}
    register(api, "ValidatingWebhookConfiguration", "open", hook("open.vigil.test", down, failure="Ignore"))
    c = client(api)
    assert c.post(PODS, json=pod("admitted")).status_code == 201
    register(api, "ValidatingWebhookConfiguration", "closed", hook("closed.vigil.test", down, failure="Fail"))
    r = c.post(PODS, json=pod("refused"))
    assert r.status_code == 500
    reason = (
        'failed calling webhook "closed.vigil.test": failed to call webhook: '
        f'Post "https://127.0.0.1:{port}/validate?timeout=10s": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {reason}",
        "reason": "InternalError",
        "details": {"causes": [{"message": reason}]},
        "code": 500,
    }
    out = kubectl(api, tmp_path, "create", "-f", "-", stdin=POD_YAML)
    assert out.stderr.strip() == (
        f'Error from server (InternalError): error when creating "STDIN": Internal error occurred: {reason}'
    )
    assert [p["metadata"]["name"] for p in c.get(PODS).json()["items"]] == ["admitted"]


def test_timeout_is_enforced(api, webhook):  # noqa: F811
    webhook.hold.set()  # the webhook answers only when released: after the API server gave up
    register(
        api, "ValidatingWebhookConfiguration", "slow", hook("slow.vigil.test", url_client(webhook, "/slow"), timeout=1)
    )
    started = time.monotonic()
    r = client(api).post(PODS, json=pod("late"))
    elapsed = time.monotonic() - started
    webhook.release()
    assert r.status_code == 500
    assert r.json()["message"] == (
        'Internal error occurred: failed calling webhook "slow.vigil.test": failed to call webhook: '
        f'Post "{webhook.url}/slow?timeout=1s": context deadline exceeded'
    )
    assert 1.0 <= elapsed < 3.0
    assert client(api).get(f"{PODS}/late").status_code == 404


def test_selectors_and_rules_decide_which_requests_a_webhook_sees(api, webhook):  # noqa: F811
    c = client(api)
    for ns, labels in (("team", {"vigil": "on"}), ("quiet", {})):
        c.post("/api/v1/namespaces", json={"metadata": {"name": ns, "labels": labels}}).raise_for_status()
    assert c.get("/api/v1/namespaces/quiet").json()["metadata"]["labels"] == {"kubernetes.io/metadata.name": "quiet"}
    webhook.answers["/ns"] = lambda req: {"allowed": False, "status": {"message": "ns"}}
    webhook.answers["/obj"] = lambda req: {"allowed": False, "status": {"message": "obj"}}
    webhook.answers["/deploy"] = lambda req: {"allowed": False, "status": {"message": "deploy"}}
    not_system = {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "quiet"]}
        ]
    }
    register(
        api,
        "ValidatingWebhookConfiguration",
        "vigil",
        hook("ns.vigil.test", url_client(webhook, "/ns"), namespaceSelector=not_system),
        hook("obj.vigil.test", url_client(webhook, "/obj"), objectSelector={"matchLabels": {"checked": "yes"}}),
        hook(
            "deploy.vigil.test",
            url_client(webhook, "/deploy"),
            rules=[
                {"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}
            ],
        ),
    )
    assert c.post("/api/v1/namespaces/kube-system/pods", json=pod("sys", ns="kube-system")).status_code == 201
    assert c.post("/api/v1/namespaces/quiet/pods", json=pod("q", ns="quiet")).status_code == 201
    r = c.post("/api/v1/namespaces/team/pods", json=pod("t", ns="team"))
    assert r.json()["message"] == 'admission webhook "ns.vigil.test" denied the request: ns'
    r = c.post("/api/v1/namespaces/quiet/pods", json=pod("labelled", ns="quiet", labels={"checked": "yes"}))
    assert r.json()["message"] == 'admission webhook "obj.vigil.test" denied the request: obj'
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "quiet"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}},
    }
    r = c.post("/apis/apps/v1/namespaces/quiet/deployments", json=deployment)
    assert (r.status_code, r.json()["message"]) == (
        400,
        'admission webhook "deploy.vigil.test" denied the request: deploy',
    )
    assert sorted(req["name"] for _, req in webhook.reviews) == ["labelled", "t", "web"]


def test_subresource_rules_and_ephemeral_containers(api, webhook, tmp_path):  # noqa: F811
    c = client(api)
    c.post(PODS, json=pod("web")).raise_for_status()
    webhook.answers["/sub"] = lambda req: {"allowed": False, "status": {"message": f"no {req['subResource']}"}}
    rules = [
        {"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/ephemeralcontainers"]}
    ]
    register(
        api, "ValidatingWebhookConfiguration", "sub", hook("sub.vigil.test", url_client(webhook, "/sub"), rules=rules)
    )
    out = kubectl(api, tmp_path, "debug", "web", "--image=busybox:1.36", "-c", "debug")
    assert (out.returncode, out.stderr) == (
        1,
        'Error from server: admission webhook "sub.vigil.test" denied the request: no ephemeralcontainers\n',
    )
    ((_, req),) = webhook.reviews
    assert (req["kind"], req["resource"], req["subResource"], req["requestSubResource"], req["operation"]) == (
        {"group": "", "version": "v1", "kind": "Pod"},
        {"group": "", "version": "v1", "resource": "pods"},
        "ephemeralcontainers",
        "ephemeralcontainers",
        "UPDATE",
    )
    assert [(e["name"], e["image"]) for e in req["object"]["spec"]["ephemeralContainers"]] == [
        ("debug", "busybox:1.36")
    ]
    assert "ephemeralContainers" not in req["oldObject"]["spec"]
    assert "ephemeralContainers" not in c.get(f"{PODS}/web").json()["spec"]
    webhook.answers["/sub"] = lambda req: {"allowed": True}
    out = kubectl(api, tmp_path, "debug", "web", "--image=busybox:1.36", "-c", "debug")
    assert out.returncode == 0, out.stderr
    assert [e["name"] for e in c.get(f"{PODS}/web").json()["spec"]["ephemeralContainers"]] == ["debug"]
    webhook.reviews.clear()
    # "pods" alone names no subresource: the main resource's updates pass this webhook by.
    r = c.patch(
        f"{PODS}/web",
        content=json.dumps({"metadata": {"labels": {"a": "b"}}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200 and webhook.reviews == []


def test_dry_run_admits_and_persists_nothing(api, webhook, tmp_path):  # noqa: F811
    register(
        api,
        "ValidatingWebhookConfiguration",
        "v",
        hook("v.vigil.test", url_client(webhook, "/v"), side_effects="NoneOnDryRun"),
    )
    rv = api.store.resource_version
    out = kubectl(api, tmp_path, "create", "--dry-run=server", "-f", "-", stdin=POD_YAML)
    assert (out.returncode, out.stdout) == (0, "pod/web created (server dry run)\n"), out.stderr
    assert api.store.resource_version == rv
    assert client(api).get(f"{PODS}/web").status_code == 404
    ((_, req),) = webhook.reviews
    assert req["dryRun"] is True and req["options"]["dryRun"] == ["All"]
    c = client(api)
    c.post(PODS, json=pod("kept")).raise_for_status()
    rv = api.store.resource_version
    r = c.delete(f"{PODS}/kept", params={"dryRun": "All"})
    assert r.status_code == 200 and api.store.resource_version == rv
    r = c.patch(
        f"{PODS}/kept",
        params={"dryRun": "All"},
        content=json.dumps({"metadata": {"labels": {"x": "y"}}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.json()["metadata"]["labels"] == {"x": "y"}
    assert c.get(f"{PODS}/kept").json()["metadata"]["labels"] == {} and api.store.resource_version == rv
    r = c.post(PODS, params={"dryRun": "Some"}, json=pod("x"))
    assert (r.status_code, r.json()["message"]) == (
        422,
        'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: supported values: "All"',
    )


def test_service_webhooks_reach_the_mapped_endpoint_and_verify_the_service_name(api, webhook):  # noqa: F811
    service = {"service": {"namespace": "webhooks", "name": "hook", "path": "/svc"}, "caBundle": webhook.ca_bundle}
    webhook.answers["/svc"] = lambda req: {"allowed": False, "status": {"message": "via service"}}
    register(api, "ValidatingWebhookConfiguration", "svc", hook("svc.vigil.test", service))
    c = client(api)
    r = c.post(PODS, json=pod("p"))
    assert r.json()["message"] == (
        'Internal error occurred: failed calling webhook "svc.vigil.test": failed to call webhook: '
        f'Post "https://{SERVICE_HOST}:443/svc?timeout=10s": service "webhooks/hook" has no endpoint in this test '
        "API server (map it with --service-endpoint webhooks/hook=https://HOST:PORT)"
    )
    api.map_service("webhooks", "hook", webhook.url)
    r = c.post(PODS, json=pod("p"))
    assert r.json()["message"] == 'admission webhook "svc.vigil.test" denied the request: via service'
    # The certificate must be valid for the Service's DNS name, as in a cluster.
    other = {"service": {"namespace": "other", "name": "hook", "path": "/svc"}, "caBundle": webhook.ca_bundle}
    c.delete(f"{VWC}/svc").raise_for_status()
    register(api, "ValidatingWebhookConfiguration", "other", hook("other.vigil.test", other))
    api.map_service("other", "hook", webhook.url)
    r = c.post(PODS, json=pod("p"))
    assert r.json()["message"] == (
        'Internal error occurred: failed calling webhook "other.vigil.test": failed to call webhook: '
        'Post "https://hook.other.svc:443/svc?timeout=10s": tls: failed to verify certificate: x509: '
        "certificate is not valid for hook.other.svc"
    )


def test_invalid_responses_fail_as_kube_apiserver_words_them(api, webhook):  # noqa: F811
    webhook.raw_answers["/uid"] = lambda req: {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "not-" + req["uid"], "allowed": True},
    }
    webhook.raw_answers["/patch"] = lambda req: {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": req["uid"], "allowed": True} | patch_of([]),
    }
    register(api, "ValidatingWebhookConfiguration", "uid", hook("uid.vigil.test", url_client(webhook, "/uid")))
    c = client(api)
    r = c.post(PODS, json=pod("p"))
    ((_, req),) = webhook.reviews
    assert r.json()["message"] == (
        'Internal error occurred: failed calling webhook "uid.vigil.test": received invalid webhook response: '
        f'expected response.uid="{req["uid"]}", got "not-{req["uid"]}"'
    )
    c.delete(f"{VWC}/uid").raise_for_status()
    register(api, "ValidatingWebhookConfiguration", "patch", hook("patch.vigil.test", url_client(webhook, "/patch")))
    r = c.post(PODS, json=pod("p"))
    assert r.json()["message"] == (
        'Internal error occurred: failed calling webhook "patch.vigil.test": received invalid webhook response: '
        "validating webhook may not return response.patch or response.patchType"
    )


def test_deletes_are_admitted_with_the_stored_object_as_old_object(api, webhook, tmp_path):  # noqa: F811
    c = client(api)
    for name in ("keep", "a", "b"):
        c.post(PODS, json=pod(name, labels={"protected": "yes"} if name == "keep" else {})).raise_for_status()
    webhook.answers["/del"] = lambda req: (
        {"allowed": False, "status": {"code": 403, "reason": "Forbidden", "message": "protected"}}
        if req["oldObject"]["metadata"]["labels"].get("protected")
        else {"allowed": True}
    )
    rules = [{"operations": ["DELETE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]
    register(
        api, "ValidatingWebhookConfiguration", "del", hook("del.vigil.test", url_client(webhook, "/del"), rules=rules)
    )
    out = kubectl(api, tmp_path, "delete", "pod", "keep")
    assert (out.returncode, out.stderr) == (
        1,
        'Error from server (Forbidden): admission webhook "del.vigil.test" denied the request: protected\n',
    )
    ((_, req),) = webhook.reviews
    assert (req["operation"], req["object"], req["oldObject"]["metadata"]["name"], req["options"]["kind"]) == (
        "DELETE",
        None,
        "keep",
        "DeleteOptions",
    )
    # A collection delete asks for each object: the unprotected ones go, the protected one stays.
    r = c.delete(PODS, params={"labelSelector": "!protected"})
    assert r.status_code == 200 and [i["metadata"]["name"] for i in r.json()["items"]] == ["a", "b"]
    assert [p["metadata"]["name"] for p in c.get(PODS).json()["items"]] == ["keep"]


def test_a_mutating_webhook_cannot_add_fields_the_kind_does_not_have(api, webhook):  # noqa: F811
    webhook.answers["/add"] = lambda req: (
        patch_of(
            [{"op": "add", "path": "/spec/bogus", "value": 1}, {"op": "add", "path": "/spec/hostname", "value": "h"}]
        )
        | {"allowed": True}
    )
    register(api, "MutatingWebhookConfiguration", "add", hook("add.vigil.test", url_client(webhook, "/add")))
    created = client(api).post(PODS, json=pod("p")).json()
    assert created["spec"]["hostname"] == "h" and "bogus" not in created["spec"]


def test_scale_writes_are_admitted_as_a_scale_of_the_deployment(api, webhook, tmp_path):  # noqa: F811
    c = client(api)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {}},
    }
    c.post("/apis/apps/v1/namespaces/default/deployments", json=deployment).raise_for_status()
    webhook.answers["/cap"] = lambda req: (
        patch_of([{"op": "replace", "path": "/spec/replicas", "value": min(req["object"]["spec"]["replicas"], 3)}])
        | {"allowed": True}
    )
    rules = [{"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["*/scale"]}]
    register(
        api, "MutatingWebhookConfiguration", "cap", hook("cap.vigil.test", url_client(webhook, "/cap"), rules=rules)
    )
    out = kubectl(api, tmp_path, "scale", "deployment", "web", "--replicas=5")
    assert (out.returncode, out.stdout) == (0, "deployment.apps/web scaled\n"), out.stderr
    assert c.get("/apis/apps/v1/namespaces/default/deployments/web").json()["spec"]["replicas"] == 3
    ((_, req),) = webhook.reviews
    assert (req["kind"], req["resource"], req["subResource"]) == (
        {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        {"group": "apps", "version": "v1", "resource": "deployments"},
        "scale",
    )
    assert (req["oldObject"]["spec"], req["object"]["spec"]) == ({"replicas": 1}, {"replicas": 5})


def test_the_command_maps_services_with_service_endpoint(webhook, tmp_path):
    import sys

    import httpx

    bad = subprocess.run(
        [sys.executable, "-m", "vigil.devtools.kubeapi", "--port", "0", "--service-endpoint", "webhooks/hook"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (bad.returncode, bad.stderr) == (
        2,
        "error: --service-endpoint 'webhooks/hook': expected NAMESPACE/NAME=https://HOST:PORT\n",
    )
    port = _closed_port()
    args = ["--port", str(port), "--token", "tok", "--plain-http", "--service-endpoint", f"webhooks/hook={webhook.url}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil.devtools.kubeapi", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == f"serving the Kubernetes API on http://127.0.0.1:{port}"
        c = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer tok"}, timeout=10)
        webhook.answers["/svc"] = lambda req: {"allowed": False, "status": {"message": "mapped"}}
        service = {"service": {"namespace": "webhooks", "name": "hook", "path": "/svc"}, "caBundle": webhook.ca_bundle}
        c.post(VWC, json=configuration("ValidatingWebhookConfiguration", "svc", hook("svc.vigil.test", service)))
        r = c.post(PODS, json=pod("p"))
        assert r.json()["message"] == 'admission webhook "svc.vigil.test" denied the request: mapped'
    finally:
        proc.terminate()
        proc.wait(10)
