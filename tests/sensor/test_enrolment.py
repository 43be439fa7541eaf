"""A sensor enrols its node with the cluster's enrolment credential against the real service, keeps the
credential it gets 0600 in its spool directory, and reuses it on the next start."""

from __future__ import annotations

import json
import logging
import stat
import threading
from pathlib import Path

import httpx
import pytest

from vigil.devtools.net import free_port
from vigil.sensor.enrolment import CREDENTIAL_FILE, EnrolmentError, enrol
from vigil.sensor.spool import Spool


def _enrolment_credential(svc, cluster_id: str) -> str:
    resp = httpx.post(
        f"{svc.url}/api/v1/clusters/{cluster_id}/sensor-enrolment",
        json={},
        headers={"Authorization": f"Bearer {svc.admin_token}"},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["credential"]


def _sensor_credentials(svc, cluster_id: str) -> list[tuple[str, str, str]]:
    items = svc.get(f"/api/v1/clusters/{cluster_id}/credentials").json()["items"]
    return [(c["id"], c["node"], c["state"]) for c in items if c["kind"] == "sensor"]


def _beat(svc, credential: str, cluster_id: str, node: str) -> int:
    return httpx.post(
        f"{svc.url}/api/v1/ingest/sensor-heartbeat",
        json={"cluster_id": cluster_id, "node_name": node},
        headers={"Authorization": f"Bearer {credential}"},
    ).status_code


def test_enrols_once_keeps_the_credential_0600_and_reuses_it(live_service, tmp_path: Path, caplog) -> None:
    cid, _ = live_service.register("enrolling")
    enrolment = _enrolment_credential(live_service, cid)
    spool = Spool(tmp_path / "spool")

    cred = enrol(live_service.url, enrolment, cid, "node-a", spool.dir)
    kept = spool.dir / CREDENTIAL_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert json.loads(kept.read_text()) == {
        "cluster_id": cid,
        "node": "node-a",
        "id": cred.id,
        "credential": cred.credential,
    }
    assert cred.credential.startswith("vgl_s_")
    assert _beat(live_service, cred.credential, cid, "node-a") == 200
    assert _sensor_credentials(live_service, cid) == [(cred.id, "node-a", "active")]

    # The next start reads the kept credential: no enrolment, so even a revoked enrolment credential does.
    (enrolment_info,) = [
        c for c in live_service.get(f"/api/v1/clusters/{cid}/credentials").json()["items"] if c["kind"] == "enrolment"
    ]
    revoked = httpx.post(
        f"{live_service.url}/api/v1/clusters/{cid}/credentials/{enrolment_info['id']}/revoke",
        headers={"Authorization": f"Bearer {live_service.admin_token}"},
    )
    assert revoked.status_code == 200
    again = enrol(live_service.url, enrolment, cid, "node-a", spool.dir)
    assert again == cred
    assert _sensor_credentials(live_service, cid) == [(cred.id, "node-a", "active")]
    # The spool does not take the credential for a stray file.
    with caplog.at_level(logging.WARNING, logger="vigil.sensor.spool"):
        assert Spool(spool.dir).entries() == []
    assert caplog.records == []


def test_a_credential_kept_for_another_node_is_not_used(live_service, tmp_path: Path) -> None:
    cid, _ = live_service.register("moved")
    enrolment = _enrolment_credential(live_service, cid)
    first = enrol(live_service.url, enrolment, cid, "node-a", tmp_path)
    second = enrol(live_service.url, enrolment, cid, "node-b", tmp_path)
    assert second.id != first.id and second.node == "node-b"
    assert json.loads((tmp_path / CREDENTIAL_FILE).read_text())["node"] == "node-b"
    assert _beat(live_service, second.credential, cid, "node-b") == 200
    assert _beat(live_service, second.credential, cid, "node-a") == 403


def test_a_refused_enrolment_says_why_and_keeps_nothing(live_service, tmp_path: Path) -> None:
    cid, cluster_credential = live_service.register("refused")
    with pytest.raises(EnrolmentError) as refused:
        enrol(live_service.url, cluster_credential, cid, "node-a", tmp_path)
    assert str(refused.value) == (
        f"the service refused to enrol node node-a of cluster {cid}: "
        "a cluster token cannot do this; it needs a token with role enrolment"
    )
    assert not (tmp_path / CREDENTIAL_FILE).exists()


def test_an_unreachable_service_is_retried_until_stopped(tmp_path: Path) -> None:
    stop = threading.Event()
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    try:
        with pytest.raises(EnrolmentError) as stopped:
            enrol(f"http://127.0.0.1:{free_port()}", "vgl_e_x", "c1", "node-a", tmp_path, stop=stop)
    finally:
        timer.cancel()
    assert str(stopped.value).startswith("stopped before node node-a was enrolled (ConnectError:")
    assert not (tmp_path / CREDENTIAL_FILE).exists()
