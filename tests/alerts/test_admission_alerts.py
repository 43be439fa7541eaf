"""What the admission webhook refuses or lets through by break-glass goes out as an alert like any other finding:
the real `vigil admission` process decides, reports to the real service, and the signed webhook output receives
admission_denied and break_glass_used; a warning (medium) stays under the output's high threshold."""

from __future__ import annotations

import time

import httpx
from tests.admission.reviews import pod, review

from vigil.devtools.admission import WebhookProcess

from .conftest import WEBHOOK_SECRET, add_output

UNTRUSTED = "evil.example.net/miner:1"
POLICY = {
    "policies": [
        {"name": "prod", "mode": "enforce", "scope": {"namespaces": ["shop"]}},
        {"name": "staging", "mode": "warn", "scope": {"namespaces": ["staging"]}},
    ]
}
REFUSED = (
    f'policy "prod" rule untrusted_registry: image {UNTRUSTED}: registry evil.example.net is not trusted '
    "(consulted: trusted registry.example.com/team (global))"
)


def _findings(svc, cluster_id: str, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = svc.get("/api/v1/findings", cluster=cluster_id, limit=50).json()["items"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_denial_and_a_break_glass_use_are_alerted_and_a_warning_under_the_threshold_is_not(
    live_service, webhook, tmp_path
):
    svc = live_service
    svc.trust_registry("registry.example.com/team")
    admin = {"Authorization": f"Bearer {svc.admin_token}"}
    assert httpx.put(f"{svc.url}/api/v1/policy/enforcement", json=POLICY, headers=admin).status_code == 200
    cid, cred = svc.register("prod-eu")
    issued = httpx.post(
        f"{svc.url}/api/v1/clusters/{cid}/admission-credential",
        json={},
        headers={"Authorization": f"Bearer {cred}"},
        timeout=30,
    )
    assert issued.status_code == 200, issued.text
    add_output(svc, name="soc-webhook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET, threshold="high")

    glass = {"vigil.dev/break-glass": "INC-7 outage"}
    with WebhookProcess(tmp_path / "webhook", svc.url, cid, issued.json()["credential"]) as hook:
        client = httpx.Client(base_url=hook.url, verify=hook.ssl_context(), timeout=10)
        answers = [
            client.post("/validate", json=review(pod(UNTRUSTED, name="miner"), user="mallory")).json()["response"],
            client.post(
                "/validate", json=review(pod(UNTRUSTED, name="hotfix", annotations=glass), user="alice")
            ).json()["response"],
            client.post("/validate", json=review(pod(UNTRUSTED, name="api", namespace="staging"))).json()["response"],
        ]
        client.close()
        assert [a["allowed"] for a in answers] == [False, True, True]
        assert answers[0]["status"]["message"] == REFUSED
        found = _findings(svc, cid, 3)
    assert sorted((f["type"], f["severity"]) for f in found) == [
        ("admission_denied", "high"),
        ("admission_warned", "medium"),
        ("break_glass_used", "high"),
    ]

    report = svc.app.state.workers.alerts.dispatch_once()
    assert (report.delivered, report.dead_lettered) == (2, 0)
    assert all(r.signature_ok is True and r.headers["x-vigil-event"] == "opened" for r in webhook.requests)
    alerted = {r.json()["finding"]["type"]: r.json()["finding"] for r in webhook.requests}
    assert sorted(alerted) == ["admission_denied", "break_glass_used"]
    denied, used = alerted["admission_denied"], alerted["break_glass_used"]
    assert (denied["severity"], denied["subject"], denied["namespace"]) == (
        "high",
        f"shop/Pod/miner: {REFUSED}",
        "shop",
    )
    assert (denied["evidence"]["outcome"], denied["evidence"]["user"], denied["evidence"]["images"]) == (
        "denied",
        "mallory",
        [UNTRUSTED],
    )
    assert [(v["policy"], v["rule"], v["message"]) for v in denied["evidence"]["violations"]] == [
        ("prod", "untrusted_registry", REFUSED)
    ]
    assert used["subject"] == "shop/Pod/hotfix: break-glass by alice: INC-7 outage"
    assert (used["evidence"]["outcome"], used["evidence"]["break_glass"]) == ("break_glass", "INC-7 outage")
