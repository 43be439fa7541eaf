"""Retention on each store: records aged past the period are deleted in bounded batches while ingest
goes on; open findings stay with their newest event, resolved ones past the period go."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, insert, select, update

from vigil.service.jobs.retention import RetentionJob
from vigil.service.settings import RetentionSettings
from vigil.service.store.retention import RULES
from vigil.service.store.schema import (
    admission_decisions,
    executions,
    finding_events,
    findings,
    ingest_batches,
    preventions,
    runtime_activities,
)

NODE = "node-1"
BATCH_ROWS = 100
AGED = timedelta(days=11)  # the default period is 10 days


def now_iso(offset: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).isoformat()


def runtime_batch(cluster_id: str, n: int, tag: str, activities: int = 0) -> dict:
    at = now_iso()
    records = [
        {
            "container_id": f"containerd://{uuid.uuid4().hex * 2}",
            "pod_uid": str(uuid.uuid4()),
            "kind": "executable",
            "path": f"/usr/bin/{tag}-{i}",
            "sha256": uuid.uuid4().hex * 2,
            "first_seen": at,
            "last_seen": at,
            "count": 1,
            "samples": [],
        }
        for i in range(n)
    ]
    acts = [
        {
            "container_id": f"containerd://{uuid.uuid4().hex * 2}",
            "pod_uid": str(uuid.uuid4()),
            "kind": "file_read",
            "target": f"/etc/{tag}-{i}",
            "upper_layer": None,
            "detail": {},
            "first_seen": at,
            "last_seen": at,
            "count": 1,
            "samples": [],
        }
        for i in range(activities)
    ]
    return {
        "batch_id": f"rt-{uuid.uuid4().hex[:16]}",
        "cluster_id": cluster_id,
        "node_name": NODE,
        "sensor_id": "s1",
        "seq": 0,
        "window_start": at,
        "window_end": now_iso(60),
        "records": records,
        "activities": acts,
    }


def post(svc, path: str, token: str, body: dict) -> httpx.Response:
    return httpx.post(f"{svc.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def denied(uid: str, name: str) -> dict:
    image = "evil.example/x:1"
    return {
        "uid": uid,
        "at": now_iso(),
        "operation": "CREATE",
        "kind": "Deployment",
        "namespace": "shop",
        "name": name,
        "user": "alice@example.com",
        "outcome": "denied",
        "images": [image],
        "violations": [
            {
                "policy": "prod",
                "mode": "enforce",
                "rule": "untrusted_registry",
                "image": image,
                "message": f'policy "prod" rule untrusted_registry: image {image}: registry evil.example is untrusted',
                "evidence": {"checked_against": "evil.example/x"},
            }
        ],
        "enforcement_revision": "abc",
    }


def set_status(svc, finding_id: int, status: str) -> None:
    resp = post(svc, f"/api/v1/findings/{finding_id}/status", svc.admin_token, {"status": status, "reason": "test"})
    assert resp.status_code == 200, resp.text


def count(svc, table) -> int:
    with svc.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_records_past_the_period_are_pruned_in_batches_while_ingest_goes_on_and_open_findings_stay(service_on):
    svc = service_on
    cluster_id, credential = svc.register("retention")

    # Old records: 1,050 executions and 120 activities in 5 batches, 6 admission decisions (6 findings).
    for i in range(5):
        body = runtime_batch(cluster_id, 210, f"old{i}", activities=24)
        assert post(svc, "/api/v1/ingest/runtime", credential, body).status_code == 200
    admission = post(svc, f"/api/v1/clusters/{cluster_id}/admission-credential", svc.admin_token, {}).json()
    decisions = [denied(f"u{i}", f"web-{i}") for i in range(6)]
    resp = post(
        svc,
        f"/api/v1/clusters/{cluster_id}/admission/decisions",
        admission["credential"],
        {"batch_id": "adm-1", "cluster_id": cluster_id, "decisions": decisions},
    )
    assert resp.status_code == 200, resp.text
    with svc.engine.connect() as conn:
        ids = conn.execute(select(findings.c.id).order_by(findings.c.id)).scalars().all()
    assert len(ids) == 6
    reopened, resolved_long_ago, resolved_lately, *still_open = ids
    set_status(svc, reopened, "resolved")
    set_status(svc, reopened, "open")
    set_status(svc, resolved_long_ago, "resolved")
    set_status(svc, resolved_lately, "resolved")

    # Age them past the period (prevention rows written as the ingest would, then aged too).
    old = datetime.now(UTC) - AGED
    with svc.engine.begin() as conn:
        conn.execute(
            insert(preventions),
            [
                {
                    "cluster_id": cluster_id,
                    "node_name": NODE,
                    "container_id": f"c{i}",
                    "pod_uid": None,
                    "rule": "drift",
                    "mode": "enforce",
                    "operation": "exec",
                    "path": f"/tmp/x{i}",
                    "killed": True,
                    "sha256": None,
                    "upper_layer": True,
                    "policy_revision": "r1",
                    "first_seen_at": old,
                    "last_seen_at": old,
                    "count": 1,
                    "samples": [],
                }  # fmt: skip
                for i in range(3)
            ],
        )
        conn.execute(update(executions).values(last_seen_at=old, first_seen_at=old))
        conn.execute(update(runtime_activities).values(last_seen_at=old, first_seen_at=old))
        conn.execute(update(admission_decisions).values(received_at=old))
        conn.execute(update(ingest_batches).values(received_at=old))
        conn.execute(update(finding_events).values(at=old))
        conn.execute(update(findings).where(findings.c.id == resolved_long_ago).values(status_changed_at=old))
        # A preventions row seen lately stays.
        conn.execute(
            insert(preventions).values(
                cluster_id=cluster_id,
                node_name=NODE,
                container_id="fresh",
                pod_uid=None,
                rule="drift",
                mode="enforce",
                operation="exec",
                path="/tmp/fresh",
                killed=True,
                sha256=None,
                upper_layer=True,
                policy_revision="r1",
                first_seen_at=datetime.now(UTC),
                last_seen_at=datetime.now(UTC),
                count=1,
                samples=[],
            )  # fmt: skip
        )
    assert count(svc, executions) == 1050 and count(svc, runtime_activities) == 120
    assert count(svc, finding_events) == 6 + 2 + 1 + 1  # one opened each; resolved+reopened; two resolved

    # Prune in batches of 100, pausing between them, while a sensor goes on sending.
    job = RetentionJob(svc.engine, RetentionSettings(period_days=10, batch_rows=BATCH_ROWS, pause=0.05))
    result: dict = {}
    pruning = threading.Thread(target=lambda: result.update(report=job.run_pass(), ended=time.monotonic()))
    started = time.monotonic()
    pruning.start()
    during: list[float] = []
    fresh = 0
    while pruning.is_alive() or not during:
        resp = post(svc, "/api/v1/ingest/runtime", credential, runtime_batch(cluster_id, 20, f"new{fresh}"))
        assert resp.status_code == 200, resp.text
        fresh += 1
        if pruning.is_alive():
            during.append(time.monotonic())
    pruning.join()
    report = result["report"]

    assert report.deleted == {
        "executions": 1050,
        "runtime_activities": 120,
        "preventions": 3,
        "admission_decisions": 6,
        "ingest_batches": 6,  # the 5 old runtime batches and the admission batch
        "resolved_findings": 1,
        "finding_history": 3,  # reopened's opened and resolved events, resolved_lately's opened event
    }
    # Each rule batch by batch: full batches, then one short one.
    assert report.batches == sum(n // BATCH_ROWS + 1 for n in report.deleted.values())
    assert len(during) >= 2, "ingest went on while the pass ran"
    assert started < during[0] and during[-1] <= result["ended"]

    # What arrived meanwhile is all there; the open findings and the lately resolved one stay.
    assert count(svc, executions) == 20 * fresh
    assert count(svc, runtime_activities) == 0
    assert count(svc, preventions) == 1
    assert count(svc, admission_decisions) == 0
    with svc.engine.connect() as conn:
        kept = dict(conn.execute(select(findings.c.id, findings.c.status)).all())
        history = conn.execute(
            select(finding_events.c.finding_id, finding_events.c.to_status).order_by(finding_events.c.id)
        ).all()
    assert kept == {reopened: "open", resolved_lately: "resolved", **dict.fromkeys(still_open, "open")}
    assert sorted(map(tuple, history)) == sorted(
        [(reopened, "open"), (resolved_lately, "resolved"), *((f, "open") for f in still_open)]
    )
    # Nothing is left to prune: a second pass deletes nothing, one batch per rule.
    again = job.run_pass()
    assert again.deleted == dict.fromkeys(again.deleted, 0) and again.batches == len(RULES)
