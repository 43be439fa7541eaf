"""Alerts end to end: findings change in a live service's store, the dispatcher delivers to real
receivers on loopback (signed webhook, Slack-style webhook, syslog over UDP and TCP)."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC

from vigil.clock import as_utc
from vigil.service.jobs.alerts import Dispatcher
from vigil.service.jobs.alerts.retry import RetryPolicy

from . import rfc5424
from .conftest import (
    LOOPBACK,
    SLACK_PATH,
    WEBHOOK_SECRET,
    add_output,
    api,
    change_status,
    drift,
    events_of,
    last_event,
    record,
)

SHA = "ab" * 32


def iso(value) -> str:
    return as_utc(value).astimezone(UTC).isoformat()


def finding_row(svc, finding_id: int):
    from sqlalchemy import select

    from vigil.service.store.schema import findings

    with svc.engine.connect() as conn:
        return conn.execute(select(findings).where(findings.c.id == finding_id)).one()


def expected_webhook(svc, finding_id: int, kind: str, severity: str, cluster_id: str, path: str, workload: str,
                     previous=None, status="open", reason="observed", actor="analysis", nth=-1) -> dict:  # fmt: skip
    ev, f = events_of(svc, finding_id)[nth], finding_row(svc, finding_id)
    return {
        "schema": "vigil.alert.v1", "event_id": ev.id, "event": kind, "at": iso(ev.at), "severity": severity,
        "previous_severity": previous, "reason": reason, "actor": actor,
        "finding": {
            "id": finding_id, "type": "runtime_drift", "status": status, "severity": severity, "subject": path,
            "cluster": {"id": cluster_id, "name": "prod-eu"}, "namespace": "shop",
            "workload": {"kind": "Deployment", "name": workload}, "image": None,
            "evidence": {"path": path, "sha256": SHA},
            "first_seen_at": iso(f.first_seen_at), "last_seen_at": iso(f.last_seen_at),
        },
    }  # fmt: skip


def expected_sd(
    svc, finding_id, kind, severity, cluster_id, path, workload, previous=None, status="open", nth=-1
) -> dict:
    ev = events_of(svc, finding_id)[nth]
    sd = {"event": kind, "event_id": str(ev.id), "finding_id": str(finding_id), "type": "runtime_drift",
          "severity": severity, "status": status, "cluster": cluster_id, "cluster_name": "prod-eu", "namespace": "shop",
          "workload": f"Deployment/{workload}", "subject": path}  # fmt: skip
    if previous:
        sd["previous_severity"] = previous
    return {"vigil@32473": sd}


def test_each_output_receives_its_payload_through_open_escalate_resolve(
    service_on, webhook, slack, syslog_udp, syslog_tcp
):
    svc = service_on
    cid, _ = svc.register("prod-eu")
    add_output(svc, name="soc-webhook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET, threshold="high")
    add_output(svc, name="chat", kind="slack", url=f"http://127.0.0.1:{slack.port}{SLACK_PATH}", threshold="medium")
    add_output(
        svc,
        name="siem-udp",
        kind="syslog",
        address=syslog_udp.address,
        threshold="low",
        facility="auth",
        hostname="vigil-test",
    )
    add_output(svc, name="siem-tcp", kind="syslog", address=syslog_tcp.address, protocol="tcp", threshold="high",
               hostname="vigil-test", events=["opened", "escalated", "resolved", "suppressed"])  # fmt: skip

    a = record(svc, drift(cid, "/tmp/xmrig", "high", "web"))
    b = record(svc, drift(cid, "/usr/local/bin/curl2", "medium", "api"))
    report = svc.app.state.workers.alerts.dispatch_once()
    # webhook and tcp (high) get A only; slack (medium) and udp (low) get both
    assert (report.delivered, report.dead_lettered) == (6, 0)

    [req] = webhook.requests
    assert req.signature_ok is True and req.status == 200
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-vigil-event"] == "opened" and req.headers["x-vigil-delivery"] == str(last_event(svc, a).id)
    assert req.json() == expected_webhook(svc, a, "opened", "high", cid, "/tmp/xmrig", "web")

    assert [r.json()["text"] for r in slack.requests] == [
        "Vigil finding opened: high runtime_drift /tmp/xmrig [cluster=prod-eu namespace=shop workload=Deployment/web]",
        "Vigil finding opened: medium runtime_drift /usr/local/bin/curl2 "
        "[cluster=prod-eu namespace=shop workload=Deployment/api]",
    ]
    first = slack.requests[0].json()
    assert first["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": ":large_orange_circle: *Finding opened: runtime_drift*\n`/tmp/xmrig`"},
    }
    assert [f["text"] for f in first["blocks"][1]["fields"]] == [
        "*Severity*\nhigh", "*Cluster*\nprod-eu", "*Namespace*\nshop", "*Workload*\nDeployment/web", "*Image*\n-",
        f"*Finding*\n#{a}",
    ]  # fmt: skip
    assert first["blocks"][2]["elements"][0]["text"] == f"event {last_event(svc, a).id} · observed · by analysis"

    udp = [rfc5424.parse(m) for m in syslog_udp.wait_for(2)]
    assert len(udp) == 2
    assert [(m.facility, m.severity, m.hostname, m.app_name, m.procid, m.msgid, m.bom) for m in udp] == [
        (4, 3, "vigil-test", "vigil", str(os.getpid()), "finding.opened", True),  # auth.err for high
        (4, 4, "vigil-test", "vigil", str(os.getpid()), "finding.opened", True),  # auth.warning for medium
    ]
    assert udp[0].sd == expected_sd(svc, a, "opened", "high", cid, "/tmp/xmrig", "web")
    assert udp[1].sd == expected_sd(svc, b, "opened", "medium", cid, "/usr/local/bin/curl2", "api")
    assert udp[0].msg == (
        "Vigil finding opened: high runtime_drift /tmp/xmrig [cluster=prod-eu namespace=shop workload=Deployment/web]"
    )
    ts = last_event(svc, a).at
    assert udp[0].timestamp == as_utc(ts).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    [tcp] = [rfc5424.parse(m) for m in syslog_tcp.wait_for(1)]
    assert not syslog_tcp.framing_errors
    assert (tcp.facility, tcp.severity, tcp.msgid) == (16, 3, "finding.opened")  # local0 by default
    assert tcp.sd == expected_sd(svc, a, "opened", "high", cid, "/tmp/xmrig", "web")

    # B rises to high: now the high outputs hear of it, as an escalation
    record(svc, drift(cid, "/usr/local/bin/curl2", "high", "api"))
    change_status(svc, a, "resolved", "binary removed from the image")
    change_status(svc, b, "suppressed", "known build step")
    report = svc.app.state.workers.alerts.dispatch_once()
    # webhook: B escalated, A resolved; slack: same; udp: same; tcp: those plus B suppressed
    assert (report.delivered, report.dead_lettered) == (9, 0)

    assert [r.json() for r in webhook.requests[1:]] == [
        expected_webhook(svc, b, "escalated", "high", cid, "/usr/local/bin/curl2", "api", previous="medium",
                         reason="severity medium -> high", nth=1),
        expected_webhook(svc, a, "resolved", "high", cid, "/tmp/xmrig", "web", status="resolved",
                         reason="binary removed from the image", actor="token:test"),
    ]  # fmt: skip
    assert all(r.signature_ok for r in webhook.requests)
    assert [r.json()["text"] for r in slack.requests[2:]] == [
        "Vigil finding escalated: high (was medium) runtime_drift /usr/local/bin/curl2 "
        "[cluster=prod-eu namespace=shop workload=Deployment/api]",
        "Vigil finding resolved: high runtime_drift /tmp/xmrig "
        "[cluster=prod-eu namespace=shop workload=Deployment/web]",
    ]
    assert slack.requests[3].json()["blocks"][0]["text"]["text"].startswith(":white_check_mark: *Finding resolved")
    udp = [rfc5424.parse(m) for m in syslog_udp.wait_for(4)]
    assert [(m.msgid, m.severity, m.sd["vigil@32473"].get("previous_severity")) for m in udp[2:]] == [
        ("finding.escalated", 3, "medium"),
        ("finding.resolved", 5, None),  # notice: a resolution is news, not an emergency
    ]
    tcp = [rfc5424.parse(m) for m in syslog_tcp.wait_for(4)]
    assert [m.msgid for m in tcp] == ["finding.opened", "finding.escalated", "finding.resolved", "finding.suppressed"]
    assert tcp[3].sd == expected_sd(
        svc, b, "suppressed", "high", cid, "/usr/local/bin/curl2", "api", status="suppressed"
    )

    # nothing pending: another pass sends nothing
    assert svc.app.state.workers.alerts.dispatch_once().delivered == 0
    assert (len(webhook.requests), len(slack.requests), len(syslog_udp.messages), len(syslog_tcp.messages)) == (
        3,
        4,
        4,
        4,
    )
    assert api(svc, "GET", "/api/v1/alerts/dead-letters").json() == {"items": [], "next": None}


def test_retries_with_backoff_then_one_delivery(live_service, webhook, caplog):
    svc = live_service
    cid, _ = svc.register("prod-eu")
    out = add_output(svc, name="hook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET, threshold="low")
    webhook.respond(500, 503)
    caplog.set_level(logging.DEBUG)
    record(svc, drift(cid))
    report = Dispatcher(
        svc.engine, RetryPolicy(attempts=4, base_delay=0.2, max_delay=2.0), destinations=LOOPBACK
    ).dispatch_once()
    assert (report.delivered, report.dead_lettered) == (1, 0)
    assert [r.status for r in webhook.requests] == [500, 503, 200]
    assert len({r.body for r in webhook.requests}) == 1  # the same alert each time
    assert len({r.headers["x-vigil-delivery"] for r in webhook.requests}) == 1
    gaps = [b.at - a.at for a, b in zip(webhook.requests, webhook.requests[1:], strict=False)]
    assert 0.2 <= gaps[0] < 0.4 and 0.4 <= gaps[1] < 0.8, gaps  # 0.2 s, then 0.4 s
    failures = [r for r in caplog.records if r.getMessage() == "alert delivery failed"]
    assert [(r.output, r.attempt, r.error) for r in failures] == [
        ("hook", 1, "HTTP 500 Internal Server Error"),
        ("hook", 2, "HTTP 503 Service Unavailable"),
    ]
    assert Dispatcher(svc.engine, destinations=LOOPBACK).dispatch_once().delivered == 0
    assert len(webhook.accepted()) == 1
    assert api(svc, "GET", f"/api/v1/alerts/outputs/{out['id']}").json()["dead_letters"] == 0


def test_dead_letter_after_persistent_failure(live_service, slack, syslog_udp):
    svc = live_service
    cid, _ = svc.register("prod-eu")
    failing = add_output(
        svc, name="flaky", kind="slack", url=f"http://127.0.0.1:{slack.port}{SLACK_PATH}", threshold="low"
    )
    gone = add_output(
        svc, name="revoked", kind="slack", url=f"http://127.0.0.1:{slack.port}/services/T/B/old", threshold="low"
    )
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = add_output(
        svc, name="siem-down", kind="syslog", address=f"127.0.0.1:{closed}", protocol="tcp", threshold="low"
    )
    slack.default_status = 500
    fid = record(svc, drift(cid))
    event_id = last_event(svc, fid).id
    report = Dispatcher(
        svc.engine, RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.1), destinations=LOOPBACK
    ).dispatch_once()
    assert (report.delivered, report.dead_lettered) == (0, 3)
    by_path = {}
    for r in slack.requests:
        by_path[r.path] = by_path.get(r.path, 0) + 1
    assert by_path == {SLACK_PATH: 3, "/services/T/B/old": 1}  # a 404 is not retried

    body = api(svc, "GET", "/api/v1/alerts/dead-letters").json()
    assert body["next"] is None
    letters = {d["output_name"]: d for d in body["items"]}
    assert set(letters) == {"flaky", "revoked", "siem-down"}
    assert (letters["flaky"]["error"], letters["flaky"]["attempts"]) == (
        "HTTP 500 Internal Server Error (after 3 attempts)",
        3,
    )
    assert (letters["revoked"]["error"], letters["revoked"]["attempts"]) == ("HTTP 404 Not Found (not retried)", 1)
    assert letters["siem-down"]["error"] == (
        f"syslog tcp 127.0.0.1:{closed}: ConnectionRefusedError: [Errno 111] Connection refused (after 3 attempts)"
    )
    for d in letters.values():
        assert (d["event_id"], d["finding_id"], d["event"]) == (event_id, fid, "opened")
        assert d["payload"]["finding"]["subject"] == "/tmp/xmrig" and d["payload"]["event_id"] == event_id
    only = api(svc, "GET", "/api/v1/alerts/dead-letters", params={"output": down["id"]}).json()["items"]
    assert [d["output_name"] for d in only] == ["siem-down"]
    page = api(svc, "GET", "/api/v1/alerts/dead-letters", params={"limit": 2}).json()
    rest = api(svc, "GET", "/api/v1/alerts/dead-letters", params={"limit": 2, "before": page["next"]}).json()
    assert len(page["items"]) == 2 and len(rest["items"]) == 1 and rest["next"] is None
    # the cursor moved on: the dead event is not retried forever
    slack.default_status = 200
    assert Dispatcher(svc.engine, destinations=LOOPBACK).dispatch_once().delivered == 0
    outputs = {o["name"]: o for o in api(svc, "GET", "/api/v1/alerts/outputs").json()["items"]}
    assert outputs["flaky"]["dead_letters"] == 1 and outputs["flaky"]["cursor"] == event_id
    # removing an output keeps its dead letters
    assert api(svc, "DELETE", f"/api/v1/alerts/outputs/{failing['id']}").status_code == 204
    kept = api(svc, "GET", "/api/v1/alerts/dead-letters").json()["items"]
    assert {(d["output_name"], d["output_id"]) for d in kept} == {
        ("flaky", None),
        ("revoked", gone["id"]),
        ("siem-down", down["id"]),
    }


def test_restart_neither_resends_nor_loses(live_service, webhook):
    svc = live_service
    cid, _ = svc.register("prod-eu")
    add_output(svc, name="hook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET, threshold="low")
    first = Dispatcher(svc.engine, destinations=LOOPBACK)
    record(svc, drift(cid, "/tmp/a"))
    assert first.dispatch_once().delivered == 1
    first.stop()
    record(svc, drift(cid, "/tmp/b"))  # while no dispatcher runs
    second = Dispatcher(svc.engine, destinations=LOOPBACK)
    assert second.dispatch_once().delivered == 1
    assert second.dispatch_once().delivered == 0
    assert [r.json()["finding"]["subject"] for r in webhook.requests] == ["/tmp/a", "/tmp/b"]
    second.stop()


def test_two_replicas_deliver_each_alert_once(live_service, webhook):
    import threading

    svc = live_service
    cid, _ = svc.register("prod-eu")
    add_output(svc, name="hook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET, threshold="low")
    for i in range(20):
        record(svc, drift(cid, f"/tmp/bin{i}"))
    replicas = [
        Dispatcher(svc.engine, batch=5, destinations=LOOPBACK),
        Dispatcher(svc.engine, batch=5, destinations=LOOPBACK),
    ]
    reports = []
    threads = [threading.Thread(target=lambda d=d: reports.append(d.dispatch_once())) for d in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r.delivered for r in reports) == 20
    deliveries = [r.headers["x-vigil-delivery"] for r in webhook.requests]
    assert len(deliveries) == 20 and len(set(deliveries)) == 20
    assert [int(d) for d in deliveries] == sorted(int(d) for d in deliveries)  # history order kept


def test_secrets_stay_out_of_logs_and_responses(live_service, webhook, slack, caplog):
    svc = live_service
    caplog.set_level(logging.DEBUG)
    cid, _ = svc.register("prod-eu")
    slack_url = f"http://127.0.0.1:{slack.port}{SLACK_PATH}"
    hook = add_output(
        svc, name="hook", kind="webhook", url=webhook.url + "?token=querySECRET123", secret=WEBHOOK_SECRET
    )
    chat = add_output(svc, name="chat", kind="slack", url=slack_url)
    generated = add_output(svc, name="gen", kind="webhook", url=webhook.url)
    assert "secret" not in hook and len(generated["secret"]) >= 32  # generated secrets are shown once
    assert hook["settings"] == {
        "url": f"http://127.0.0.1:{webhook.port}/vigil/hook?***",
        "secret": "***",
        "allow_insecure_http": False,
    }
    assert chat["settings"] == {"url": f"http://127.0.0.1:{slack.port}/***", "allow_insecure_http": False}
    webhook.default_status = 500
    slack.default_status = 500
    record(svc, drift(cid))
    Dispatcher(
        svc.engine, RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01), destinations=LOOPBACK
    ).dispatch_once()
    assert len(slack.requests) == 2 and len(webhook.requests) == 4
    listing = (
        api(svc, "GET", "/api/v1/alerts/outputs").text + api(svc, "GET", f"/api/v1/alerts/outputs/{chat['id']}").text
    )
    letters = api(svc, "GET", "/api/v1/alerts/dead-letters").text
    failed_test = api(svc, "POST", f"/api/v1/alerts/outputs/{chat['id']}/test")
    assert failed_test.status_code == 502
    # The receiver's body ("ok" here) is never echoed: an output aimed at an internal host reads nothing back.
    assert failed_test.json() == {
        "error": "delivery_failed",
        "detail": "alert output 'chat': HTTP 500 Internal Server Error",
    }
    secrets = [WEBHOOK_SECRET, "xoxSLACKtokenPART", "querySECRET123", generated["secret"]]
    for text in (caplog.text, listing, letters, failed_test.text, str([r.__dict__ for r in caplog.records])):
        for s in secrets:
            assert s not in text
    assert "alert dead-lettered" in caplog.text  # the failures were logged, just not the secrets


def test_test_endpoint_sends_a_test_event(live_service, webhook, syslog_udp):
    svc = live_service
    hook = add_output(svc, name="hook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET, threshold="critical")
    siem = add_output(svc, name="siem", kind="syslog", address=syslog_udp.address, hostname="vigil-test")
    assert api(svc, "POST", f"/api/v1/alerts/outputs/{hook['id']}/test").json() == {"delivered": True, "output": "hook"}
    [req] = webhook.requests
    body = req.json()
    assert req.signature_ok and req.headers["x-vigil-event"] == "test" and req.headers["x-vigil-delivery"] == "0"
    assert (body["event"], body["event_id"], body["finding"]["subject"]) == (
        "test",
        0,
        "Vigil alert test: this output is configured correctly",
    )
    assert api(svc, "POST", f"/api/v1/alerts/outputs/{siem['id']}/test").status_code == 200
    [m] = [rfc5424.parse(x) for x in syslog_udp.wait_for(1)]
    assert (m.msgid, m.severity, m.sd["vigil@32473"]["event"]) == ("finding.test", 6, "test")
    missing = api(svc, "POST", "/api/v1/alerts/outputs/999/test")
    assert missing.status_code == 404 and missing.json()["detail"] == "alert output 999 does not exist"
