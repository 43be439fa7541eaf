"""Listings: key-based pagination, filters, findings with history and status changes."""

from __future__ import annotations

import httpx

from vigil.devtools.inventory import synthetic_snapshot
from vigil.model.findings import Family
from vigil.service.store.findings import Observation, observe, resolve_absent

from .helpers import post_batch


def test_pagination_walks_every_row_once(service_on):
    svc = service_on
    cid, cred = svc.register("pages")
    snap = synthetic_snapshot(cid, nodes=7, pods=23, images=3)
    post_batch(svc, cred, snap)
    seen, after, pages = [], None, 0
    while True:
        params = {"cluster": cid, "limit": 5}
        if after:
            params["after"] = after
        body = svc.get("/api/v1/pods", **params).json()
        seen += [p["uid"] for p in body["items"]]
        pages += 1
        after = body["next"]
        if after is None:
            break
    assert pages == 5 and len(seen) == 23 and len(set(seen)) == 23
    assert sorted(seen) == sorted(p.uid for p in snap.pods)
    nodes = svc.get("/api/v1/nodes", cluster=cid, limit=7).json()
    assert [n["name"] for n in nodes["items"]] == [f"node-{i:04d}" for i in range(7)] and nodes["next"] is None


def test_filters_narrow_listings(live_service):
    svc = live_service
    cid, cred = svc.register("filters")
    snap = synthetic_snapshot(cid, nodes=2, pods=40, images=3)
    post_batch(svc, cred, snap)
    ns = snap.pods[0].namespace
    pods = svc.list_all("/api/v1/pods", cluster=cid, namespace=ns)
    assert pods and {p["namespace"] for p in pods} == {ns}
    assert len(pods) == sum(1 for p in snap.pods if p.namespace == ns)
    on_node = svc.list_all("/api/v1/pods", node="node-0001")
    assert len(on_node) == sum(1 for p in snap.pods if p.node_name == "node-0001")
    deployments = svc.list_all("/api/v1/workloads", kind="Deployment")
    assert {w["kind"] for w in deployments} == {"Deployment"}
    assert len(deployments) == sum(1 for w in snap.workloads if w.kind == "Deployment")
    wl = deployments[0]
    assert wl["pods"] == sum(1 for p in snap.pods if p.workload.name == wl["name"] and p.namespace == wl["namespace"])
    assert svc.list_all("/api/v1/pods", cluster="filters", namespace=ns) == pods
    # An unknown cluster is refused, not an empty listing that looks like an empty cluster.
    unknown = svc.get("/api/v1/pods", cluster="no-such-cluster")
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == "query.cluster: cluster 'no-such-cluster' is not registered (known: filters)"


def _observe(svc, **kw):
    with svc.engine.begin() as conn:
        return observe(conn, Observation(**kw))


def test_findings_filters_history_and_admin_status_changes(service_on):
    svc = service_on
    cid, _ = svc.register("findings")
    digest_a, digest_b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    fid, change = _observe(
        svc,
        dedup_key=f"tag_moved/{cid}/shop/Deployment/web/registry.example.com/shop/web:1.0",
        type="tag_moved",
        severity="medium",
        subject="registry.example.com/shop/web:1.0",
        evidence={"runtime_digest": digest_a, "registry_digest": digest_b},
        cluster_id=cid,
        namespace="shop",
        workload_kind="Deployment",
        workload_name="web",
    )
    assert change == "opened"
    _observe(
        svc,
        dedup_key="untrusted/x",
        type="untrusted_registry",
        severity="high",
        subject="docker.io/library/nginx:latest",
        cluster_id=cid,
        namespace="edge",
    )
    again = _observe(
        svc,
        dedup_key=f"tag_moved/{cid}/shop/Deployment/web/registry.example.com/shop/web:1.0",
        type="tag_moved",
        severity="high",
        subject="registry.example.com/shop/web:1.0",
        evidence={"runtime_digest": digest_a, "registry_digest": digest_b},
        cluster_id=cid,
        namespace="shop",
    )
    assert again == (fid, "escalated")

    high = svc.get("/api/v1/findings", severity="high").json()["items"]
    assert sorted(f["type"] for f in high) == ["tag_moved", "untrusted_registry"]
    shop = svc.get("/api/v1/findings", namespace="shop", type="tag_moved", status="open").json()["items"]
    assert [f["id"] for f in shop] == [fid]
    assert shop[0]["evidence"] == {"runtime_digest": digest_a, "registry_digest": digest_b}

    viewer = svc.token("viewer")
    denied = httpx.post(
        f"{svc.url}/api/v1/findings/{fid}/status",
        json={"status": "suppressed", "reason": "known"},
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert denied.status_code == 403
    ok = httpx.post(
        f"{svc.url}/api/v1/findings/{fid}/status",
        json={"status": "suppressed", "reason": "accepted risk until 2027"},
        headers={"Authorization": f"Bearer {svc.admin_token}"},
    )
    assert ok.status_code == 200 and ok.json()["status"] == "suppressed"
    # A suppressed finding stays suppressed when observed again.
    assert (
        _observe(svc, dedup_key="untrusted/x", type="untrusted_registry", severity="high", subject="s")[1]
        == "unchanged"
    )
    with svc.engine.begin() as conn:
        assert resolve_absent(conn, Family.INTEGRITY, set(), "image stopped running") == 1
    detail = svc.get(f"/api/v1/findings/{fid}").json()
    assert [(h["from_status"], h["to_status"], h["severity"], h["reason"]) for h in detail["history"]] == [
        (None, "open", "medium", "observed"),
        ("open", "open", "high", "severity medium -> high"),
        ("open", "suppressed", "high", "accepted risk until 2027"),
    ]
    assert detail["history"][-1]["actor"] == "token:test-admin"
    resolved = svc.get("/api/v1/findings", status="resolved").json()["items"]
    assert [f["type"] for f in resolved] == ["untrusted_registry"] and resolved[0][
        "status_reason"
    ] == "image stopped running"
    assert svc.get("/api/v1/findings/999999").status_code == 404


def test_openapi_documents_the_inventory_schema(live_service):
    spec = httpx.get(f"{live_service.url}/api/openapi.json").json()
    op = spec["paths"]["/api/v1/ingest/inventory"]["post"]
    body_schema = op["requestBody"]["content"]["application/json"]["schema"]
    refs = {m["$ref"] for m in body_schema["oneOf"]}
    assert refs == {"#/components/schemas/InventorySnapshot", "#/components/schemas/InventoryDelta"}
    assert "Pod" in spec["components"]["schemas"] and "Container" in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
