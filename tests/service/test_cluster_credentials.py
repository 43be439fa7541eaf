"""Registration tokens cannot take over an existing cluster, use limits hold under concurrency, and a
cluster's credentials are listed, rotated with an overlap and revoked (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from vigil.devtools.inventory import synthetic_snapshot
from vigil.devtools.service import LiveService
from vigil.service.cli.serve import cluster_app
from vigil.service.store.credentials import RegistrationRefused, register_with_token
from vigil.service.store.tokens import authenticate

from .helpers import actual_pods, post_batch


@pytest.fixture
def svc(tmp_path, database_url):
    service = LiveService(tmp_path / "data", database_url).start()
    yield service
    service.stop()


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _registration_token(svc, **body) -> dict:
    resp = httpx.post(f"{svc.url}/api/v1/clusters/registration-tokens", json=body, headers=_h(svc.admin_token))
    assert resp.status_code == 201, resp.text
    return resp.json()


def _register(svc, token: str, name: str) -> httpx.Response:
    return httpx.post(f"{svc.url}/api/v1/clusters/register", json={"name": name}, headers=_h(token), timeout=30)


def _beat(svc, cluster_id: str, credential: str) -> int:
    resp = httpx.post(
        f"{svc.url}/api/v1/ingest/heartbeat",
        json={"cluster_id": cluster_id, "version": "0.1.0", "interval_seconds": 15},
        headers=_h(credential),
    )
    return resp.status_code


def test_a_one_use_token_registers_once_under_concurrent_requests(svc):
    token = _registration_token(svc, max_uses=1)
    barrier = threading.Barrier(8)
    codes: list[int] = []

    def attempt(i: int) -> None:
        barrier.wait()
        codes.append(_register(svc, token["token"], f"edge-{i}").status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [401] * 7
    assert len(svc.get("/api/v1/clusters").json()["items"]) == 1
    (info,) = [t for t in svc.get("/api/v1/tokens").json()["items"] if t["id"] == token["id"]]
    assert (info["uses"], info["max_uses"]) == (1, 1)


def test_uses_are_counted_atomically_after_every_request_authenticated(svc):
    """The race itself: eight requests all passed authentication (each saw 0 of 1 uses) before any
    counted its use; the count in the registration transaction still admits exactly one."""
    token = _registration_token(svc, max_uses=1)
    with svc.engine.connect() as conn:
        principals = [authenticate(conn, token["token"]) for _ in range(8)]
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            with svc.engine.begin() as conn:
                register_with_token(conn, principals[i], f"edge-{i}")
            outcomes.append("registered")
        except RegistrationRefused as exc:
            outcomes.append(f"{exc.status}: {exc}")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = f"401: token {token['id']} has no use left (limit reached, expired or revoked)"
    assert sorted(outcomes) == [refused] * 7 + ["registered"]
    assert len(svc.get("/api/v1/clusters").json()["items"]) == 1


def test_an_unbound_token_cannot_take_over_an_existing_cluster(svc):
    prod_id, prod_cred = svc.register("prod")
    assert post_batch(svc, prod_cred, synthetic_snapshot(prod_id, nodes=1, pods=3)).status_code == 200
    before = actual_pods(svc, prod_id)
    assert len(before) == 3

    token = _registration_token(svc)
    taken = _register(svc, token["token"], "prod")
    assert taken.status_code == 409
    assert taken.json() == {
        "error": "conflict",
        "detail": "cluster 'prod' is already registered; this registration token can only create a new cluster. "
        "Re-registering it needs a registration token bound to that cluster, issued by an admin "
        "(POST /api/v1/clusters/registration-tokens with cluster_name 'prod', or `vigil cluster install --name prod`)",
    }
    assert "credential" not in taken.json()
    assert actual_pods(svc, prod_id) == before
    assert _beat(svc, prod_id, prod_cred) == 200
    # The refusal does not spend a use, and the token still creates a new cluster.
    (info,) = [t for t in svc.get("/api/v1/tokens").json()["items"] if t["id"] == token["id"]]
    assert info["uses"] == 0
    new = _register(svc, token["token"], "staging")
    assert new.status_code == 200 and new.json()["cluster_id"] != prod_id

    # An admin's token bound to prod re-registers it (same id); prod's earlier credential gets the overlap.
    bound = _registration_token(svc, cluster_name="prod", max_uses=1)
    again = _register(svc, bound["token"], "prod")
    assert again.status_code == 200 and again.json()["cluster_id"] == prod_id
    states = [c["state"] for c in svc.get(f"/api/v1/clusters/{prod_id}/credentials").json()["items"]]
    assert states == ["expiring", "active"]
    assert _beat(svc, prod_id, prod_cred) == 200


def test_rotation_keeps_the_old_credential_for_the_overlap_only(svc):
    cid, old = svc.register("rolling")
    (first,) = svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]
    assert (first["cluster_id"], first["state"], first["expires_at"], first["revoked_at"]) == (
        cid,
        "active",
        None,
        None,
    )
    resp = httpx.post(
        f"{svc.url}/api/v1/clusters/{cid}/credentials/rotate", json={"overlap_seconds": 2}, headers=_h(svc.admin_token)
    )
    assert resp.status_code == 200, resp.text
    rotated = resp.json()
    assert rotated["cluster_id"] == cid and rotated["credential"].startswith("vgl_c_")
    listed = svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]
    assert [(c["id"], c["state"]) for c in listed] == [(first["id"], "expiring"), (rotated["id"], "active")]
    assert listed[0]["expires_at"] == rotated["previous_valid_until"]
    assert _beat(svc, cid, old) == 200  # within the overlap
    assert _beat(svc, cid, rotated["credential"]) == 200
    time.sleep(2.5)
    assert _beat(svc, cid, old) == 401
    assert _beat(svc, cid, rotated["credential"]) == 200
    assert [c["state"] for c in svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]] == [
        "expired",
        "active",
    ]


def test_a_revoked_credential_is_refused_on_its_next_use(svc):
    cid, cred = svc.register("revoked")
    other_id, other_cred = svc.register("other")
    (info,) = svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]
    assert _beat(svc, cid, cred) == 200
    # A credential is revoked only through its own cluster.
    wrong = httpx.post(
        f"{svc.url}/api/v1/clusters/{other_id}/credentials/{info['id']}/revoke", headers=_h(svc.admin_token)
    )
    assert wrong.status_code == 404
    assert _beat(svc, cid, cred) == 200
    resp = httpx.post(f"{svc.url}/api/v1/clusters/{cid}/credentials/{info['id']}/revoke", headers=_h(svc.admin_token))
    assert resp.status_code == 200
    assert resp.json()["state"] == "revoked" and resp.json()["revoked_at"] is not None
    assert _beat(svc, cid, cred) == 401
    assert _beat(svc, other_id, other_cred) == 200
    # Viewers and cluster credentials cannot list, rotate or revoke.
    viewer = svc.token("viewer")
    assert svc.get(f"/api/v1/clusters/{cid}/credentials", token=viewer).status_code == 403
    assert httpx.post(f"{svc.url}/api/v1/clusters/{other_id}/credentials/rotate", json={},
                      headers=_h(other_cred)).status_code == 403  # fmt: skip


def test_cli_lists_rotates_and_revokes(svc):
    cid, cred = svc.register("cli")
    env = {"VIGIL_TOKEN": svc.admin_token, "VIGIL_URL": svc.url}
    run = CliRunner().invoke
    rotated = run(cluster_app, ["rotate", cid, "--overlap", "5m"], env=env, catch_exceptions=False)
    assert rotated.exit_code == 0, rotated.output
    new_cred = rotated.stdout.strip()
    assert new_cred.startswith("vgl_c_") and _beat(svc, cid, new_cred) == 200
    listed = run(cluster_app, ["credentials", cid, "-o", "json"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    items = svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]
    assert [c["state"] for c in items] == ["expiring", "active"]
    assert all(c["id"] in listed.stdout for c in items) and cred not in listed.stdout
    revoked = run(cluster_app, ["revoke", cid, items[1]["id"]], env=env, catch_exceptions=False)
    assert revoked.exit_code == 0, revoked.output
    assert _beat(svc, cid, new_cred) == 401
    missing = run(cluster_app, ["revoke", cid, items[1]["id"]], env=env)
    assert missing.exit_code == 1 and "has no live credential" in missing.output
