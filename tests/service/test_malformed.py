"""Malformed inventory bodies: each gets a 4xx naming the problem, and changes nothing."""

from __future__ import annotations

import gzip

import httpx
import orjson
import pytest

from vigil.devtools.inventory import synthetic_snapshot

from .helpers import actual_nodes, actual_pods

DIGEST = "sha256:" + "a" * 64


def _snapshot(cluster_id: str, **over) -> dict:
    body = synthetic_snapshot(cluster_id, nodes=1, pods=2, images=1, batch_id="bad").model_dump(mode="json")
    body.update(over)
    return body


def _pod(body: dict, **over) -> dict:
    body["pods"][0].update(over)
    return body


def _container(body: dict, **over) -> dict:
    body["pods"][0]["containers"][0].update(over)
    return body


CASES = [
    # (name, body builder, status, expected fragment of detail)
    ("not json", lambda cid: b"{", 400, "body is not valid JSON"),
    ("empty body", lambda cid: b"", 400, "request body is empty"),
    ("array instead of object", lambda cid: b"[]", 422, "body: Input should be an object"),
    (
        "unknown kind",
        lambda cid: _snapshot(cid, kind="replace"),
        422,
        "body: Input tag 'replace' found using 'kind' does not match",
    ),
    (
        "missing kind",
        lambda cid: {k: v for k, v in _snapshot(cid).items() if k != "kind"},
        422,
        "body: Unable to extract tag using discriminator 'kind'",
    ),
    (
        "missing batch id",
        lambda cid: {k: v for k, v in _snapshot(cid).items() if k != "batch_id"},
        422,
        "body.batch_id: Field required",
    ),
    (
        "batch id with spaces",
        lambda cid: _snapshot(cid, batch_id="a b"),
        422,
        "body.batch_id: 'a b' is not a valid batch id",
    ),
    (
        "missing cluster id",
        lambda cid: {k: v for k, v in _snapshot(cid).items() if k != "cluster_id"},
        422,
        "body.cluster_id: Field required",
    ),
    ("wrong wire version", lambda cid: _snapshot(cid, wire_version=2), 422, "body.wire_version: Input should be 1"),
    ("unknown top-level field", lambda cid: _snapshot(cid, podz=[]), 422, "body.podz: Extra inputs are not permitted"),
    ("nodes not a list", lambda cid: _snapshot(cid, nodes={"a": 1}), 422, "body.nodes: Input should be a valid array"),
    (
        "node without name",
        lambda cid: _snapshot(cid, nodes=[{"labels": {}}]),
        422,
        "body.nodes[0].name: Field required",
    ),
    (
        "node name invalid",
        lambda cid: _snapshot(cid, nodes=[{"name": "bad_node!"}]),
        422,
        "body.nodes[0].name: 'bad_node!' is not a valid node name",
    ),
    (
        "node condition status",
        lambda cid: _snapshot(cid, nodes=[{"name": "n1", "conditions": [{"type": "Ready", "status": "yes"}]}]),
        422,
        "body.nodes[0].conditions[0].status: Input should be 'True', 'False' or 'Unknown'",
    ),
    (
        "duplicate node",
        lambda cid: _snapshot(cid, nodes=[{"name": "n1"}, {"name": "n1"}]),
        422,
        "node n1 appears twice in the batch",
    ),
    (
        "pod without uid",
        lambda cid: _pod(_snapshot(cid), uid=""),
        422,
        "body.pods[0].uid: String should have at least 1 character",
    ),
    (
        "pod namespace invalid",
        lambda cid: _pod(_snapshot(cid), namespace="Prod"),
        422,
        "body.pods[0].namespace: 'Prod' is not a valid namespace",
    ),
    (
        "pod phase unknown",
        lambda cid: _pod(_snapshot(cid), phase="Sleeping"),
        422,
        "body.pods[0].phase: Input should be 'Pending', 'Running', 'Succeeded', 'Failed' or 'Unknown'",
    ),
    (
        "pod workload missing",
        lambda cid: _pod(_snapshot(cid), workload=None),
        422,
        "body.pods[0].workload: Input should be an object",
    ),
    (
        "pod workload not in snapshot",
        lambda cid: _pod(_snapshot(cid), workload={"kind": "Deployment", "name": "ghost"}),
        422,
        "names workload Deployment/ghost, which is not in the snapshot's workloads",
    ),
    (
        "workload kind lowercase",
        lambda cid: _snapshot(cid, workloads=[{"namespace": "a", "kind": "deployment", "name": "x"}], pods=[]),
        422,
        "body.workloads[0].kind: 'deployment' is not a valid kind",
    ),
    (
        "container kind unknown",
        lambda cid: _container(_snapshot(cid), kind="sidecar"),
        422,
        "body.pods[0].containers[0].kind: Input should be 'init', 'regular' or 'ephemeral'",
    ),
    (
        "container digest not sha256",
        lambda cid: _container(_snapshot(cid), image_digest="md5:abc"),
        422,
        "body.pods[0].containers[0].image_digest: 'md5:abc' is not a sha256 digest",
    ),
    (
        "container digest uppercase",
        lambda cid: _container(_snapshot(cid), image_digest=DIGEST.upper().replace("SHA256", "sha256")),
        422,
        "is not a sha256 digest",
    ),
    (
        "container id without runtime",
        lambda cid: _container(_snapshot(cid), container_id="abc123"),
        422,
        "body.pods[0].containers[0].container_id: 'abc123' is not a valid container id",
    ),
    (
        "container restart count negative",
        lambda cid: _container(_snapshot(cid), restart_count=-1),
        422,
        "body.pods[0].containers[0].restart_count: Input should be greater than or equal to 0",
    ),
    (
        "container image empty",
        lambda cid: _container(_snapshot(cid), image=""),
        422,
        "body.pods[0].containers[0].image: String should have at least 1 character",
    ),
    (
        "duplicate container",
        lambda cid: _pod(_snapshot(cid), containers=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
        422,
        "container regular/a appears twice in pod",
    ),
    (
        "duplicate pod uid",
        lambda cid: _snapshot(cid, pods=[_snapshot(cid)["pods"][0]] * 2),
        422,
        "appears twice in the batch",
    ),
    (
        "security flag not bool",
        lambda cid: _pod(_snapshot(cid), security={"privileged": "very"}),
        422,
        "body.pods[0].security.privileged: Input should be a valid boolean",
    ),
    (
        "delta delete not list",
        lambda cid: {"kind": "delta", "batch_id": "d", "cluster_id": cid, "deletes": {"pods": "uid-1"}},
        422,
        "body.deletes.pods: Input should be a valid array",
    ),
]


@pytest.mark.parametrize("name,build,status,fragment", CASES, ids=[c[0] for c in CASES])
def test_malformed_batch_is_refused_and_changes_nothing(live_service, name, build, status, fragment):
    svc = live_service
    cid, cred = svc.register("strict")
    good = synthetic_snapshot(cid, nodes=2, pods=3, images=1, batch_id="good")
    assert (
        httpx.post(
            f"{svc.url}/api/v1/ingest/inventory",
            content=good.model_dump_json(),
            headers={"Authorization": f"Bearer {cred}"},
        ).status_code
        == 200
    )
    before = (actual_pods(svc, cid), actual_nodes(svc, cid))

    body = build(cid)
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = httpx.post(
        f"{svc.url}/api/v1/ingest/inventory",
        content=raw,
        headers={"Authorization": f"Bearer {cred}", "Content-Type": "application/json"},
    )
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert fragment in detail, detail
    assert (actual_pods(svc, cid), actual_nodes(svc, cid)) == before


def test_transport_level_problems(live_service):
    svc = live_service
    cid, cred = svc.register("transport")
    auth = {"Authorization": f"Bearer {cred}"}
    url = f"{svc.url}/api/v1/ingest/inventory"
    bad_gzip = httpx.post(url, content=b"not gzip at all", headers={**auth, "Content-Encoding": "gzip"})
    assert bad_gzip.status_code == 400 and bad_gzip.json()["detail"].startswith("body is not valid gzip")
    truncated = gzip.compress(b'{"kind": "snapshot"}')[:-6]
    cut = httpx.post(url, content=truncated, headers={**auth, "Content-Encoding": "gzip"})
    assert cut.status_code == 400 and "gzip" in cut.json()["detail"]
    br = httpx.post(url, content=b"{}", headers={**auth, "Content-Encoding": "br"})
    assert br.status_code == 415 and br.json()["detail"] == "Content-Encoding 'br' is not accepted; use gzip or none"
    xml = httpx.post(url, content=b"<a/>", headers={**auth, "Content-Type": "application/xml"})
    assert (
        xml.status_code == 415
        and xml.json()["detail"] == "content type 'application/xml' is not accepted; send application/json"
    )
    assert actual_pods(svc, cid) == []


def test_zip_bomb_is_refused(tmp_path):
    from vigil.devtools.service import LiveService

    svc = LiveService(tmp_path / "d")
    svc.settings.max_body_bytes = 1024 * 1024
    svc.app = __import__("vigil.service.app", fromlist=["create_app"]).create_app(svc.settings, engine=svc.engine)
    svc.start()
    try:
        cid, cred = svc.register("bomb")
        bomb = gzip.compress(b" " * (8 * 1024 * 1024))
        resp = httpx.post(
            f"{svc.url}/api/v1/ingest/inventory",
            content=bomb,
            headers={"Authorization": f"Bearer {cred}", "Content-Encoding": "gzip"},
        )
        assert resp.status_code == 413
        assert resp.json() == {"error": "payload_too_large", "detail": "decompressed body exceeds 1048576 bytes"}
    finally:
        svc.stop()


def test_query_parameters_are_validated(live_service):
    bad_limit = live_service.get("/api/v1/pods", limit=0)
    assert bad_limit.status_code == 422 and bad_limit.json()["detail"].startswith(
        "query.limit: Input should be greater than or equal to 1"
    )
    bad_cursor = live_service.get("/api/v1/pods", after="garbage!")
    assert bad_cursor.status_code == 400 and "is not one this service issued" in bad_cursor.json()["detail"]
    bad_sev = live_service.get("/api/v1/findings", severity="critical,urgent")
    assert bad_sev.status_code == 422
    assert bad_sev.json()["detail"] == "query.severity: 'urgent' not one of critical, high, medium, low, info, unknown"
