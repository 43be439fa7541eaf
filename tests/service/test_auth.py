"""Who may do what: 401 without a valid token, 403 for the wrong role or cluster, each with a JSON reason."""

from __future__ import annotations

import httpx

from vigil.devtools.inventory import synthetic_snapshot
from vigil.service.store.db import head_revision

from .helpers import actual_pods, post_batch


def _h(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def test_health_needs_no_token(live_service):
    assert httpx.get(f"{live_service.url}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{live_service.url}/readyz").json() == {"status": "ready", "schema": head_revision()}


def test_metrics_need_a_metrics_viewer_or_admin_token(live_service):
    svc = live_service
    anon = httpx.get(f"{svc.url}/metrics")
    assert anon.status_code == 401 and anon.json() == {
        "error": "unauthorized",
        "detail": "missing Authorization header; send 'Authorization: Bearer <token>'",
    }
    scraper = svc.token("metrics", "prometheus")
    assert scraper.startswith("vgl_m_")
    for token in (scraper, svc.token("viewer"), svc.admin_token):
        metrics = httpx.get(f"{svc.url}/metrics", headers=_h(token))
        assert metrics.status_code == 200 and "vigil_http_requests_total" in metrics.text
    _, credential = svc.register("metrics-test")
    refused = httpx.get(f"{svc.url}/metrics", headers=_h(credential))
    assert refused.status_code == 403 and refused.json()["detail"] == (
        "a cluster token cannot do this; it needs a token with role metrics or admin or viewer"
    )
    # A scraper's token reads nothing else.
    data = httpx.get(f"{svc.url}/api/v1/clusters", headers=_h(scraper))
    assert data.status_code == 403 and data.json()["detail"] == (
        "a metrics token cannot do this; it needs a token with role admin or viewer"
    )


def test_every_api_endpoint_refuses_missing_and_wrong_tokens(live_service):
    url = live_service.url
    endpoints = [
        ("GET", "/api/v1/clusters"),
        ("GET", "/api/v1/nodes"),
        ("GET", "/api/v1/workloads"),
        ("GET", "/api/v1/pods"),
        ("GET", "/api/v1/images"),
        ("GET", "/api/v1/findings"),
        ("GET", "/api/v1/findings/1"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("POST", "/api/v1/clusters/registration-tokens"),
        ("POST", "/api/v1/clusters/register"),
        ("POST", "/api/v1/ingest/inventory"),
        ("POST", "/api/v1/ingest/heartbeat"),
        ("POST", "/api/v1/findings/1/status"),
    ]
    for method, path in endpoints:
        missing = httpx.request(method, url + path, content=b"{not json")
        assert missing.status_code == 401, (path, missing.text)
        assert missing.json() == {
            "error": "unauthorized",
            "detail": "missing Authorization header; send 'Authorization: Bearer <token>'",
        }
        assert missing.headers["www-authenticate"] == 'Bearer realm="vigil"'
        wrong = httpx.request(method, url + path, headers=_h("vgl_u_not-a-real-token"))
        assert wrong.status_code == 401 and wrong.json()["detail"] == "token is not known", path
        basic = httpx.request(method, url + path, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
        assert basic.json()["detail"] == "Authorization header must be 'Bearer <token>'", path
    # The docs page lists the API, and is public like the health endpoints are not: it holds no data.
    assert httpx.get(url + "/api/docs").status_code == 200


def test_viewer_reads_but_cannot_create_tokens(live_service):
    viewer = live_service.token("viewer", "alice")
    assert live_service.get("/api/v1/clusters", token=viewer).status_code == 200
    resp = httpx.post(f"{live_service.url}/api/v1/tokens", json={"name": "eve", "role": "admin"}, headers=_h(viewer))
    assert resp.status_code == 403
    assert resp.json() == {
        "error": "forbidden",
        "detail": "a viewer token cannot do this; it needs a token with role admin",
    }
    resp = httpx.post(f"{live_service.url}/api/v1/clusters/registration-tokens", json={}, headers=_h(viewer))
    assert resp.status_code == 403
    names = [t["name"] for t in live_service.get("/api/v1/tokens").json()["items"]]
    assert "eve" not in names


def test_admin_creates_and_revokes_tokens(live_service):
    resp = httpx.post(
        f"{live_service.url}/api/v1/tokens",
        json={"name": "ci-bot", "role": "viewer"},
        headers=_h(live_service.admin_token),
    )
    assert resp.status_code == 201
    created = resp.json()
    assert created["role"] == "viewer" and created["token"].startswith("vgl_u_")
    assert live_service.get("/api/v1/pods", token=created["token"]).status_code == 200
    listed = live_service.get("/api/v1/tokens").json()["items"]
    assert all("token" not in t and "token_hash" not in t for t in listed)
    gone = httpx.delete(f"{live_service.url}/api/v1/tokens/{created['id']}", headers=_h(live_service.admin_token))
    assert gone.status_code == 204
    after = live_service.get("/api/v1/pods", token=created["token"])
    assert after.status_code == 401 and after.json()["detail"] == f"token {created['id']} was revoked"


def test_cluster_credential_writes_only_its_own_cluster(live_service):
    svc = live_service
    a_id, a_cred = svc.register("cluster-a")
    b_id, b_cred = svc.register("cluster-b")
    assert post_batch(svc, b_cred, synthetic_snapshot(b_id, pods=4)).status_code == 200
    before = actual_pods(svc, b_id)

    resp = post_batch(svc, a_cred, synthetic_snapshot(b_id, pods=1, batch_id="evil"))
    assert resp.status_code == 403
    assert resp.json() == {
        "error": "forbidden",
        "detail": f"this credential is scoped to cluster {a_id}; it cannot write cluster {b_id}",
    }
    beat = httpx.post(f"{svc.url}/api/v1/ingest/heartbeat", json={"cluster_id": b_id}, headers=_h(a_cred))
    assert beat.status_code == 403
    assert actual_pods(svc, b_id) == before

    # Nor can it read inventory, touch tokens or policy.
    for method, path, body in (
        ("GET", "/api/v1/pods", None),
        ("GET", "/api/v1/clusters", None),
        ("POST", "/api/v1/tokens", {"name": "x", "role": "admin"}),
        ("POST", "/api/v1/clusters/registration-tokens", {}),
        ("POST", "/api/v1/clusters/register", {"name": "other"}),
    ):
        resp = httpx.request(method, svc.url + path, json=body, headers=_h(a_cred))
        assert resp.status_code == 403, path
        assert resp.json()["error"] == "forbidden"


def test_registration_tokens_expire_and_count_uses(live_service):
    svc = live_service
    resp = httpx.post(
        f"{svc.url}/api/v1/clusters/registration-tokens",
        json={"max_uses": 1, "ttl_seconds": 600},
        headers=_h(svc.admin_token),
    )
    assert resp.status_code == 201
    reg = resp.json()
    ok = httpx.post(f"{svc.url}/api/v1/clusters/register", json={"name": "edge-1"}, headers=_h(reg["token"]))
    assert ok.status_code == 200 and ok.json()["name"] == "edge-1"
    again = httpx.post(f"{svc.url}/api/v1/clusters/register", json={"name": "edge-2"}, headers=_h(reg["token"]))
    assert again.status_code == 401
    assert again.json()["detail"] == f"token {reg['id']} has been used its 1 allowed times"
    # A registration token cannot write inventory.
    snap = synthetic_snapshot(ok.json()["cluster_id"], pods=1)
    assert post_batch(svc, svc.registration_token(), snap).status_code == 403


def test_heartbeat_marks_controller_running(live_service):
    svc = live_service
    cid, cred = svc.register("beats")
    assert svc.list_all("/api/v1/clusters")[0]["controller"]["status"] == "never_seen"
    resp = httpx.post(
        f"{svc.url}/api/v1/ingest/heartbeat",
        json={"cluster_id": cid, "version": "0.1.0", "interval_seconds": 15},
        headers=_h(cred),
    )
    assert resp.status_code == 200
    c = svc.get(f"/api/v1/clusters/{cid}").json()
    assert c["controller"]["status"] == "running" and c["controller"]["version"] == "0.1.0"
    assert c["last_seen_at"] is not None
