"""A cluster is pending until its controller's first heartbeat, then connected; disconnected once it stops."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from vigil.clock import utcnow
from vigil.service.store.schema import clusters


def only_cluster(svc) -> dict:
    (cluster,) = svc.get("/api/v1/clusters").json()["items"]
    return cluster


def test_pending_until_the_first_heartbeat_then_connected(live_service):
    cluster_id, credential = live_service.register("prod-eu-1")
    registered = only_cluster(live_service)
    assert (registered["id"], registered["status"], registered["controller"]["status"]) == (
        cluster_id,
        "pending",
        "never_seen",
    )
    beat = httpx.post(
        f"{live_service.url}/api/v1/ingest/heartbeat",
        json={"cluster_id": cluster_id, "version": "0.1.0", "interval_seconds": 15},
        headers={"Authorization": f"Bearer {credential}"},
    )
    assert beat.status_code < 300
    connected = only_cluster(live_service)
    assert (connected["status"], connected["controller"]["status"]) == ("connected", "running")
    with live_service.engine.begin() as conn:
        conn.execute(update(clusters).values(controller_heartbeat_at=utcnow() - timedelta(seconds=46)))
    stopped = only_cluster(live_service)
    assert (stopped["status"], stopped["controller"]["status"]) == ("disconnected", "stopped")
    assert live_service.get(f"/api/v1/clusters/{cluster_id}").json()["status"] == "disconnected"
