"""Each sensor has its own credential, enrolled with the cluster's enrolment credential and scoped to its
node's runtime records and heartbeats (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from typer.testing import CliRunner

from vigil.devtools.inventory import synthetic_snapshot
from vigil.devtools.service import LiveService
from vigil.service.cli.serve import cluster_app
from vigil.service.store.credentials import enrol_sensor

from .helpers import actual_pods, post_batch


@pytest.fixture
def svc(tmp_path, database_url):
    service = LiveService(tmp_path / "data", database_url).start()
    yield service
    service.stop()


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _post(svc, token: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{svc.url}{path}", json=body, headers=_h(token), timeout=30)


def _enrolment(svc, cluster_id: str, token: str | None = None, **body) -> httpx.Response:
    return _post(svc, token or svc.admin_token, f"/api/v1/clusters/{cluster_id}/sensor-enrolment", body)


def _enrol(svc, cluster_id: str, enrolment: str, node: str) -> httpx.Response:
    return _post(svc, enrolment, f"/api/v1/clusters/{cluster_id}/sensors", {"node": node})


def _runtime(cluster_id: str, node: str, batch_id: str) -> dict:
    return {
        "batch_id": batch_id,
        "cluster_id": cluster_id,
        "node_name": node,
        "sensor_id": "s-1",
        "seq": 0,
        "window_start": "2026-11-27T10:00:00Z",
        "window_end": "2026-11-27T10:00:05Z",
        "records": [
            {
                "container_id": None,
                "pod_uid": None,
                "kind": "executable",
                "path": "/usr/bin/true",
                "sha256": "ab" * 32,
                "first_seen": "2026-11-27T10:00:00Z",
                "last_seen": "2026-11-27T10:00:01Z",
                "count": 1,
                "samples": [],
            }
        ],
    }


def _beat(svc, token: str, cluster_id: str, node: str) -> httpx.Response:
    return _post(svc, token, "/api/v1/ingest/sensor-heartbeat", {"cluster_id": cluster_id, "node_name": node})


def _node_rule(own: str, other: str) -> dict:
    return {
        "error": "forbidden",
        "detail": f"this sensor credential is scoped to node {own}; it cannot write node {other} "
        "(a sensor writes its own node's runtime records and heartbeats only)",
    }


def _sensor(svc, cluster_id: str, node: str) -> str:
    enrolment = _enrolment(svc, cluster_id)
    assert enrolment.status_code == 200, enrolment.text
    resp = _enrol(svc, cluster_id, enrolment.json()["credential"], node)
    assert resp.status_code == 200, resp.text
    return resp.json()["credential"]


def test_a_sensor_writes_its_own_node_only(svc):
    cid, cluster_cred = svc.register("prod")
    snap = synthetic_snapshot(cid, nodes=2, pods=3, images=1)
    assert post_batch(svc, cluster_cred, snap).status_code == 200
    own, other = snap.nodes[0].name, snap.nodes[1].name

    # The cluster's controller credential issues the enrolment credential (as an admin can).
    enrolment = _enrolment(svc, cid, cluster_cred)
    assert enrolment.status_code == 200, enrolment.text
    assert enrolment.json()["credential"].startswith("vgl_e_")
    enrolled = _enrol(svc, cid, enrolment.json()["credential"], own)
    assert enrolled.status_code == 200, enrolled.text
    assert (enrolled.json()["cluster_id"], enrolled.json()["node"]) == (cid, own)
    sensor = enrolled.json()["credential"]
    assert sensor.startswith("vgl_s_")

    ok = _post(svc, sensor, "/api/v1/ingest/runtime", _runtime(cid, own, "own-1"))
    assert ok.status_code == 200 and ok.json()["applied"] is True, ok.text
    beat = _beat(svc, sensor, cid, own)
    assert beat.status_code == 200 and beat.json() == {"status": "ok", "sensor_disabled": False}

    foreign = _post(svc, sensor, "/api/v1/ingest/runtime", _runtime(cid, other, "other-1"))
    assert (foreign.status_code, foreign.json()) == (403, _node_rule(own, other))
    foreign_beat = _beat(svc, sensor, cid, other)
    assert (foreign_beat.status_code, foreign_beat.json()) == (403, _node_rule(own, other))
    processes = svc.list_all("/api/v1/processes")
    assert [p["node_name"] for p in processes] == [own]

    # Nothing else: no inventory, no controller heartbeat, no reading.
    before = actual_pods(svc, cid)
    empty = synthetic_snapshot(cid, nodes=0, pods=0, images=0)
    wiped = post_batch(svc, sensor, empty)
    assert wiped.status_code == 403
    assert wiped.json() == {
        "error": "forbidden",
        "detail": "a sensor token cannot do this; it needs a token with role cluster",
    }
    assert actual_pods(svc, cid) == before
    controller_beat = _post(
        svc, sensor, "/api/v1/ingest/heartbeat", {"cluster_id": cid, "version": "0.1.0", "interval_seconds": 15}
    )
    assert controller_beat.status_code == 403
    assert svc.get("/api/v1/clusters", token=sensor).status_code == 403
    assert _enrolment(svc, cid, sensor).status_code == 403
    assert _enrol(svc, cid, sensor, own).status_code == 403

    # The cluster credential still writes any node's runtime records, as before sensors had their own.
    assert _post(svc, cluster_cred, "/api/v1/ingest/runtime", _runtime(cid, other, "other-2")).status_code == 200


def test_the_enrolment_credential_only_enrols_its_own_clusters_sensors(svc):
    cid, cluster_cred = svc.register("prod")
    other_id, other_cred = svc.register("staging")
    enrolment = _enrolment(svc, cid).json()["credential"]
    for path, body in [
        ("/api/v1/ingest/runtime", _runtime(cid, "node-0000", "e-1")),
        ("/api/v1/ingest/sensor-heartbeat", {"cluster_id": cid, "node_name": "node-0000"}),
        ("/api/v1/ingest/heartbeat", {"cluster_id": cid, "version": "0.1.0", "interval_seconds": 15}),
    ]:
        resp = _post(svc, enrolment, path, body)
        assert resp.status_code == 403, path
        assert resp.json()["detail"].startswith("a enrolment token cannot do this;"), resp.text
    refused = post_batch(svc, enrolment, synthetic_snapshot(cid, nodes=0, pods=0, images=0))
    assert refused.status_code == 403
    assert svc.list_all("/api/v1/processes") == []

    # Another cluster's enrolment credential, or another cluster's controller, cannot enrol here.
    wrong = _enrol(svc, other_id, enrolment, "node-0000")
    assert (wrong.status_code, wrong.json()["detail"]) == (
        403,
        f"this credential is scoped to cluster {cid}; it cannot act for cluster {other_id}",
    )
    assert _enrolment(svc, cid, other_cred).status_code == 403
    assert _enrolment(svc, cid, svc.token("viewer")).status_code == 403
    bad = _enrol(svc, cid, enrolment, "Not a node!")
    assert bad.status_code == 422


def test_re_enrolling_a_node_keeps_its_old_credential_for_the_overlap_only(svc):
    cid, _ = svc.register("rolling")
    enrolment = _enrolment(svc, cid).json()["credential"]
    first = _enrol(svc, cid, enrolment, "node-a").json()
    neighbour = _enrol(svc, cid, enrolment, "node-b").json()
    # The overlap is the one cluster credential rotation uses; shorten it here to watch it end.
    with svc.engine.begin() as conn:
        second, until = enrol_sensor(conn, cid, "node-a", timedelta(seconds=2))
    listed = svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]
    sensors = [(c["id"], c["kind"], c["node"], c["state"]) for c in listed if c["kind"] == "sensor"]
    assert sensors == [
        (first["id"], "sensor", "node-a", "expiring"),
        (neighbour["id"], "sensor", "node-b", "active"),
        (second.id, "sensor", "node-a", "active"),
    ]
    assert _beat(svc, first["credential"], cid, "node-a").status_code == 200  # within the overlap
    assert _beat(svc, second.secret, cid, "node-a").status_code == 200
    time.sleep(2.5)
    assert _beat(svc, first["credential"], cid, "node-a").status_code == 401
    assert _beat(svc, second.secret, cid, "node-a").status_code == 200
    assert _beat(svc, neighbour["credential"], cid, "node-b").status_code == 200

    # Through the API, re-enrolling uses the default overlap (the cluster credential's: 10 minutes).
    third = _enrol(svc, cid, enrolment, "node-a").json()
    (replaced,) = [c for c in svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"] if c["id"] == second.id]
    assert replaced["state"] == "expiring" and replaced["expires_at"] == third["previous_valid_until"]

    # Issuing a new enrolment credential gives the earlier one the same overlap.
    again = _enrolment(svc, cid, overlap_seconds=0).json()
    assert _enrol(svc, cid, enrolment, "node-c").status_code == 401
    assert _enrol(svc, cid, again["credential"], "node-c").status_code == 200
    kinds = [c["kind"] for c in svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]]
    assert kinds.count("enrolment") == 2 and kinds.count("cluster") == 1


def test_a_revoked_sensor_credential_is_refused_and_listed_by_the_cli(svc):
    cid, _ = svc.register("revoking")
    sensor = _sensor(svc, cid, "node-a")
    (info,) = [c for c in svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"] if c["kind"] == "sensor"]
    env = {"VIGIL_TOKEN": svc.admin_token, "VIGIL_URL": svc.url}
    run = CliRunner().invoke
    listed = run(cluster_app, ["credentials", cid, "-o", "json"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    assert f'"id": "{info["id"]}"' in listed.stdout and '"node": "node-a"' in listed.stdout
    assert '"kind": "sensor"' in listed.stdout and sensor not in listed.stdout
    assert _beat(svc, sensor, cid, "node-a").status_code == 200
    revoked = run(cluster_app, ["revoke", cid, info["id"]], env=env, catch_exceptions=False)
    assert revoked.exit_code == 0, revoked.output
    resp = _beat(svc, sensor, cid, "node-a")
    assert (resp.status_code, resp.json()["detail"]) == (401, f"token {info['id']} was revoked")
