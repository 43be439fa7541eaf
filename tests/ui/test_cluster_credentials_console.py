"""The cluster page lists the cluster's credentials to admins, with a revoke button that ends one."""

from __future__ import annotations

import re

import httpx

from vigil.devtools.service import LiveService

COOKIE = "vigil_session"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def _sign_in(client: httpx.Client, token: str) -> str:
    page = client.get("/login")
    resp = client.post("/login", data={"token": token, "csrf": _csrf(page.text), "next": "/"},
                       headers={"Cookie": f"{COOKIE}={page.cookies[COOKIE]}"})  # fmt: skip
    assert resp.status_code == 303
    return resp.cookies[COOKIE]


def _beat(svc: LiveService, cluster_id: str, credential: str) -> int:
    return httpx.post(
        f"{svc.url}/api/v1/ingest/heartbeat",
        json={"cluster_id": cluster_id, "version": "0.1.0", "interval_seconds": 15},
        headers={"Authorization": f"Bearer {credential}"},
    ).status_code


def test_an_admin_revokes_a_credential_from_the_cluster_page(tmp_path):
    svc = LiveService(tmp_path / "data").start()
    try:
        cid, cred = svc.register("console")
        (info,) = svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]
        with httpx.Client(base_url=svc.url, follow_redirects=False) as client:
            viewer = {"Cookie": f"{COOKIE}={_sign_in(client, svc.token('viewer'))}"}
            assert 'id="credentials"' not in client.get(f"/clusters/{cid}", headers=viewer).text
            admin = {"Cookie": f"{COOKIE}={_sign_in(client, svc.admin_token)}"}
            page = client.get(f"/clusters/{cid}", headers=admin)
            assert page.status_code == 200
            assert f'<tr data-credential-id="{info["id"]}"><td class="mono">{info["id"]}</td>' in page.text
            action = f"/clusters/{cid}/credentials/{info['id']}/revoke"
            assert f'action="{action}"' in page.text
            assert _beat(svc, cid, cred) == 200
            done = client.post(action, data={"csrf": _csrf(page.text)}, headers=admin)
            assert done.status_code == 303 and done.headers["location"] == f"/clusters/{cid}#credentials"
            assert _beat(svc, cid, cred) == 401
            after = client.get(f"/clusters/{cid}", headers=admin).text
            assert f'action="{action}"' not in after and "<td>revoked</td>" in after
    finally:
        svc.stop()


def test_an_admin_rotates_the_cluster_credential_from_the_cluster_page(tmp_path):
    svc = LiveService(tmp_path / "data").start()
    try:
        cid, old = svc.register("rolling")
        action = f"/clusters/{cid}/credentials/rotate"
        with httpx.Client(base_url=svc.url, follow_redirects=False) as client:
            viewer = {"Cookie": f"{COOKIE}={_sign_in(client, svc.token('viewer'))}"}
            viewer_page = client.get(f"/clusters/{cid}", headers=viewer).text
            assert f'action="{action}"' not in viewer_page
            refused = client.post(action, data={"csrf": _csrf(viewer_page)}, headers=viewer)
            assert refused.status_code == 403
            assert [c["state"] for c in svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]] == ["active"]

            admin = {"Cookie": f"{COOKIE}={_sign_in(client, svc.admin_token)}"}
            page = client.get(f"/clusters/{cid}", headers=admin)
            assert f'action="{action}"' in page.text and 'id="rotated-secret"' not in page.text
            done = client.post(action, data={"csrf": _csrf(page.text)}, headers=admin)
            assert done.status_code == 201
            new = re.search(r'<code id="rotated-secret">(vgl_c_[^<]+)</code>', done.text)
            assert new is not None and new.group(1) != old
            listed = svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]
            assert [c["state"] for c in listed] == ["expiring", "active"]
            assert f"<strong>Cluster credential {listed[1]['id']} issued.</strong>" in done.text
            # Both work during the overlap; the secret is shown in that one response only.
            assert (_beat(svc, cid, old), _beat(svc, cid, new.group(1))) == (200, 200)
            assert new.group(1) not in client.get(f"/clusters/{cid}", headers=admin).text
            forged = client.post(action, data={"csrf": "forged"}, headers=admin)
            assert forged.status_code == 403
            assert len(svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]) == 2
    finally:
        svc.stop()
