"""A prevention a sensor reports goes out as an alert like any other finding: the signed webhook receives the
prevented_execution finding, killed or would-have-been, with its evidence."""

from __future__ import annotations

import httpx
from tests.service.helpers import post_batch
from tests.service.test_runtime_prevention import POLICY, WEB, enrol_sensor, prevention_record, runtime_batch, snapshot

from .conftest import WEBHOOK_SECRET, add_output


def test_a_prevention_is_alerted_with_its_rule_mode_and_process(live_service, webhook):
    svc = live_service
    cid, cred = svc.register("prod-eu")
    assert post_batch(svc, cred, snapshot(cid)).status_code == 200
    admin = {"Authorization": f"Bearer {svc.admin_token}"}
    assert httpx.put(f"{svc.url}/api/v1/policy/enforcement", json=POLICY, headers=admin).status_code == 200
    add_output(svc, name="soc-webhook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET, threshold="high")
    sensor = enrol_sensor(svc, cid, "node-1")
    batch = runtime_batch(
        cid, "b-1", [prevention_record(cid, "memfd_exec", "audit", "memfd:payload (deleted)", revision="r1")]
    )
    resp = httpx.post(f"{svc.url}/api/v1/ingest/runtime", json=batch, headers={"Authorization": f"Bearer {sensor}"})
    assert resp.status_code == 200, resp.text
    report = svc.app.state.workers.alerts.dispatch_once()
    assert (report.delivered, report.dead_lettered) == (1, 0)
    [req] = webhook.requests
    assert req.signature_ok is True and req.headers["x-vigil-event"] == "opened"
    finding = req.json()["finding"]
    assert (finding["type"], finding["severity"], finding["subject"]) == (
        "prevented_execution",
        "high",
        "would have been killed (audit): exec of memfd:payload (deleted) (rule memfd_exec)",
    )
    assert finding["workload"] == {"kind": "Deployment", "name": "web"}
    evidence = finding["evidence"]
    assert (evidence["rule"], evidence["mode"], evidence["killed"], evidence["policy"]) == (
        "memfd_exec",
        "audit",
        False,
        "web-kill",
    )
    assert (evidence["container_id"], evidence["parents"], evidence["process"]["pid"]) == (
        WEB,
        ["sh", "containerd-shim"],
        4242,
    )
