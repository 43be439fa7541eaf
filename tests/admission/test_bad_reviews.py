"""Whatever reaches the webhook's port, the answer is a status and a reason, never a trace."""

from __future__ import annotations

import copy

import orjson
import pytest
from starlette.testclient import TestClient

from vigil.admission.review import MAX_REVIEW_BYTES
from vigil.admission.server import Webhook, build_app

from .reviews import knowledge, pod, review
from .test_decisions import Recorder


def _with(path: str, value) -> bytes:
    body = copy.deepcopy(review(pod("registry.example.com/team/app:1.0")))
    node = body
    *parents, last = path.split(".")
    for step in parents:
        node = node[step]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return orjson.dumps(body)


def _spec(**changes) -> bytes:
    obj = pod("registry.example.com/team/app:1.0")
    obj["spec"].update(changes)
    return orjson.dumps(review(obj))


def _update(**fields) -> bytes:
    body = review(pod("registry.example.com/team/app:1.0"), operation="UPDATE")
    body["request"].update(fields)
    return orjson.dumps(body)


CASES = [
    (b"", 400, "empty body: expected an AdmissionReview (admission.k8s.io/v1) JSON object"),
    (b"{", 400, "body is not JSON: unexpected end of data: line 1 column 2 (char 1)"),
    (b"\xff\xfe", 400, "body is not JSON: str is not valid UTF-8: surrogates not allowed: line 1 column 1 (char 0)"),
    (b"[]", 400, "body must be a JSON object (an AdmissionReview), not list"),
    (b"null", 400, "body must be a JSON object (an AdmissionReview), not NoneType"),
    (b'{"kind": "Pod"}', 400, "kind must be AdmissionReview, not 'Pod'"),
    (
        _with("apiVersion", "admission.k8s.io/v1beta1"),
        400,
        "apiVersion 'admission.k8s.io/v1beta1' is not supported; this webhook speaks admission.k8s.io/v1",
    ),
    (_with("apiVersion", KeyError), 400, "apiVersion None is not supported; this webhook speaks admission.k8s.io/v1"),
    (_with("request", KeyError), 400, "AdmissionReview.request must be an object"),
    (_with("request", "x"), 400, "AdmissionReview.request must be an object"),
    (_with("request.uid", KeyError), 400, "request.uid must be a non-empty string"),
    (_with("request.uid", 7), 400, "request.uid must be a non-empty string"),
    (_with("request.uid", "u" * 129), 400, "request.uid is longer than 128 characters"),
    (_with("request.kind", KeyError), 400, "request.kind must be an object"),
    (_with("request.kind", {"group": "", "version": "v1"}), 400, "request.kind.kind must be a non-empty string"),
    (_with("request.resource", []), 400, "request.resource must be an object"),
    (
        _with("request.operation", "EXPLODE"),
        400,
        "request.operation 'EXPLODE' is not one of CREATE, UPDATE, DELETE, CONNECT",
    ),
    (_with("request.object", KeyError), 400, "request.object must be an object for a CREATE"),
    (_with("request.object", "pod"), 400, "request.object must be an object for a CREATE"),
    (_with("request.userInfo", "root"), 400, "request.userInfo must be an object"),
    (_with("request.dryRun", "yes"), 400, "request.dryRun must be true or false"),
    (_with("request.namespace", 5), 400, "request.namespace must be a non-empty string"),
    (_spec(containers="nginx"), 400, "request.object: Pod.spec.containers must be a list"),
    (_spec(containers=["nginx"]), 400, "request.object: Pod.spec.containers[0] must be an object"),
    (_spec(containers=[{"name": "c"}]), 400, "request.object: Pod.spec.containers[0].image must be a non-empty string"),
    (
        _spec(initContainers=[{"name": "c", "image": 3}]),
        400,
        "request.object: Pod.spec.initContainers[0].image must be a non-empty string",
    ),
    (_with("request.object.spec", KeyError), 400, "request.object: Pod.spec must be an object"),
    (
        _with("request.object.metadata", {"annotations": {"a": 1}}),
        400,
        "request.object: Pod.metadata.annotations must map strings to strings",
    ),
    (
        _with("request.object.metadata", {"labels": ["x"]}),
        400,
        "request.object: Pod.metadata.labels must map strings to strings",
    ),
    (_update(oldObject="pod"), 400, "request.oldObject must be an object or null"),
    (_update(oldObject={"kind": "Pod"}), 400, "request.oldObject: Pod.spec must be an object"),
    (
        _update(oldObject={"spec": {"containers": [{"name": "c", "image": ""}]}}),
        400,
        "request.oldObject: Pod.spec.containers[0].image must be a non-empty string",
    ),
    (b"[" * 100_000 + b"]" * 100_000, 400, "body is not JSON: depth limit exceeded: line 1 column 1026 (char 1025)"),
]


@pytest.fixture(scope="module")
def http():
    return TestClient(build_app(Webhook("prod-eu", knowledge(), Recorder())))


@pytest.mark.parametrize(("body", "status", "detail"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_a_bad_review_gets_a_status_and_the_reason(http, body, status, detail):
    resp = http.post("/validate", content=body, headers={"Content-Type": "application/json"})
    assert (resp.status_code, resp.json()) == (status, {"error": "bad AdmissionReview", "detail": detail})


def test_an_oversized_review_is_refused_before_it_is_read(http):
    body = b" " * (MAX_REVIEW_BYTES + 1)
    resp = http.post("/validate", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert (
        resp.json()["detail"]
        == f"AdmissionReview body of {MAX_REVIEW_BYTES + 1} bytes exceeds the limit of {MAX_REVIEW_BYTES}"
    )


def test_a_body_that_is_not_json_by_its_content_type_is_refused(http):
    resp = http.post("/validate", content=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert (resp.status_code, resp.json()["detail"]) == (415, "Content-Type must be application/json")


def test_deletes_and_kinds_without_pods_are_admitted(http):
    body = review(pod("evil.example.net/x:1"), operation="CREATE")
    body["request"]["operation"] = "DELETE"
    assert http.post("/validate", json=body).json()["response"]["allowed"] is True
    body = review(pod("evil.example.net/x:1"))
    body["request"]["kind"]["kind"] = "ConfigMap"
    assert http.post("/validate", json=body).json()["response"]["allowed"] is True
