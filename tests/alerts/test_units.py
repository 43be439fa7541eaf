"""Pure parts of alerting, with plain data: classification, thresholds, the cursor, backoff,
validation, masking, and each output's rendering."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from vigil.service.analysis.alerts.cursor import Cursor
from vigil.service.analysis.alerts.events import (
    AlertEvent,
    FindingView,
    classify,
    event_document,
    meets_threshold,
)
from vigil.service.analysis.alerts.redact import mask_url, redact
from vigil.service.analysis.alerts.validation import check_http_url, parse_address
from vigil.service.jobs.alerts.outputs import OUTPUTS, DeliveryFailed
from vigil.service.jobs.alerts.outputs.slack import slack_message
from vigil.service.jobs.alerts.outputs.syslog import octet_counted, rfc5424
from vigil.service.jobs.alerts.outputs.webhook import sign, verify
from vigil.service.jobs.alerts.retry import RetryPolicy, deliver

from . import rfc5424 as parser

AT = datetime(2026, 12, 1, 10, 30, 5, 123456, tzinfo=UTC)


def event(kind="opened", severity="high", previous=None, subject="/tmp/xmrig", **finding) -> AlertEvent:
    f = {
        "id": 7, "type": "runtime_drift", "subject": subject, "cluster_id": "c-1", "cluster_name": "prod-eu",
        "namespace": "shop", "workload_kind": "Deployment", "workload_name": "web",
        "image": "registry.example.com/shop/web:1.4@sha256:" + "c" * 64,
        "evidence": {"path": subject}, "first_seen_at": AT, "last_seen_at": AT,
    }  # fmt: skip
    f.update(finding)
    return AlertEvent(
        42,
        kind,
        AT,
        severity,
        "resolved" if kind == "resolved" else "open",
        FindingView(**f),
        previous,
        "observed",
        "analysis",
    )


@pytest.mark.parametrize(
    "frm,to,sev,prev,expected",
    [
        (None, "open", "high", None, "opened"),
        ("resolved", "open", "high", "high", "reopened"),
        ("suppressed", "open", "low", "low", "reopened"),
        ("open", "open", "critical", "high", "escalated"),
        ("open", "open", "high", "medium", "escalated"),
        ("open", "open", "medium", "high", None),  # a drop in severity is not news
        ("open", "open", "high", "high", None),
        ("open", "resolved", "high", "high", "resolved"),
        ("suppressed", "resolved", "high", "high", "resolved"),
        ("open", "suppressed", "high", "high", "suppressed"),
        ("resolved", "resolved", "high", "high", None),
    ],
)
def test_classify(frm, to, sev, prev, expected):
    assert classify(frm, to, sev, prev) == expected


def test_thresholds():
    assert meets_threshold("critical", "high") and meets_threshold("high", "high")
    assert not meets_threshold("medium", "high")
    assert meets_threshold("medium", "medium") and not meets_threshold("low", "medium")
    # "low" receives everything, including findings whose severity is unknown or info
    assert all(meets_threshold(s, "low") for s in ("critical", "high", "medium", "low", "info", "unknown"))
    with pytest.raises(ValueError, match="threshold 'urgent' is not one of critical, high, medium, low"):
        meets_threshold("high", "urgent")


def test_cursor_tracks_out_of_order_commits_and_gaps():
    c = Cursor(10)
    c.mark(12)  # 11 is still being committed by another transaction
    c.mark(13)
    assert (c.position, c.done, c.gaps()) == (10, [(12, 13)], [(11, 11)])
    assert not c.is_done(11) and c.is_done(12) and c.is_done(9)
    c.mark(11)
    assert (c.position, c.done, c.gaps()) == (13, [], [])
    c.mark(20)
    c.mark(16)
    c.mark_range(17, 19)
    assert (c.position, c.done, c.gaps()) == (13, [(16, 20)], [(14, 15)])
    restored = Cursor.from_store(c.position, c.to_store())
    assert restored == c
    c.mark_range(14, 15)
    assert (c.position, c.done) == (20, [])
    c.mark(5)  # already handled: no change
    assert (c.position, c.done) == (20, [])


def test_backoff_is_exponential_capped_and_bounded():
    p = RetryPolicy(attempts=5, base_delay=0.5, max_delay=3.0)
    assert [p.delay(i) for i in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert p.delay(1, retry_after=2.0) == 2.0 and p.delay(1, retry_after=100) == 3.0
    waits, calls = [], []

    def send():
        calls.append(1)
        raise DeliveryFailed("HTTP 503")

    out = deliver(send, p, lambda s: waits.append(s) or False)
    assert (out.delivered, out.attempts, out.error) == (False, 5, "HTTP 503 (after 5 attempts)")
    assert waits == [0.5, 1.0, 2.0, 3.0] and len(calls) == 5
    with pytest.raises(ValueError, match="attempts 0 must be at least 1"):
        RetryPolicy(attempts=0)


def test_permanent_failure_is_not_retried_and_stop_interrupts():
    out = deliver(
        lambda: (_ for _ in ()).throw(DeliveryFailed("HTTP 404: no_service", permanent=True)),
        RetryPolicy(),
        lambda s: False,
    )
    assert (out.delivered, out.attempts, out.error) == (False, 1, "HTTP 404: no_service (not retried)")
    out = deliver(lambda: (_ for _ in ()).throw(DeliveryFailed("refused")), RetryPolicy(), lambda s: True)
    assert (out.delivered, out.interrupted, out.attempts) == (False, True, 1)


@pytest.mark.parametrize(
    "url,allow,message",
    [
        ("ftp://example.com/x", False, "scheme 'ftp' is not allowed; use https (or http to a loopback host)"),
        ("example.com/hook", False, "scheme '(none)' is not allowed"),
        (
            "http://siem.example.com/hook",
            False,
            "plain http to 'siem.example.com' would send alerts unencrypted; use https, or set allow_insecure_http",
        ),
        ("https:///nohost", False, "has no host"),
        ("https://exa mple.com/", False, "must not contain whitespace"),
        ("https://example.com:99999/", False, "is not a valid URL"),
    ],
)
def test_url_rules(url, allow, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_http_url(url, allow)


def test_url_rules_accept():
    assert check_http_url("https://hooks.example.com/x?y=1", False)
    assert check_http_url("http://127.0.0.1:8000/x", False)
    assert check_http_url("http://[::1]:8000/x", False)
    assert check_http_url("http://localhost/x", False)
    assert check_http_url("http://siem.internal/x", True)


def test_syslog_address_rules():
    assert parse_address("siem.example.com:514") == ("siem.example.com", 514)
    assert parse_address("[::1]:6514") == ("::1", 6514)
    assert parse_address("10.0.0.5:1514") == ("10.0.0.5", 1514)
    for bad, msg in [
        ("siem.example.com", "is not host:port"),
        ("siem.example.com:0", "port 0 is not between 1 and 65535"),
        ("siem.example.com:70000", "port 70000 is not between 1 and 65535"),
        ("bad_host!:514", "is not a valid host name or IP address"),
        ("[1::2::3]:514", "is not an IPv6 address"),
        ("[zz::1]:514", "is not host:port"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_address(bad)


def test_request_models_name_the_field():
    with pytest.raises(ValidationError) as exc:
        OUTPUTS["syslog"].Request.model_validate(
            {"name": "siem", "kind": "syslog", "address": "nope", "threshold": "urgent"}
        )
    locs = {e["loc"][0]: e["msg"] for e in exc.value.errors()}
    assert set(locs) == {"address", "threshold"}
    assert "'nope' is not host:port" in locs["address"]
    with pytest.raises(ValidationError) as exc:
        OUTPUTS["webhook"].Request.model_validate(
            {"name": "Bad Name", "kind": "webhook", "url": "https://x.example.com", "events": ["opened", "exploded"]}
        )
    assert {e["loc"][0] for e in exc.value.errors()} == {"name", "events"}


def test_masking_and_redaction():
    assert mask_url("https://hooks.slack.com/services/T0/B0/secret", keep_path=False) == "https://hooks.slack.com/***"
    assert (
        mask_url("https://user:pw@siem.example.com:8443/in?token=abc", keep_path=True)
        == "https://siem.example.com:8443/in?***"
    )
    assert redact("POST https://h/x%2Fy failed: x/y", ["x/y"]) == "POST https://h/*** failed: ***"


def test_webhook_signature_covers_timestamp_and_body():
    body = b'{"a":1}'
    sig = sign("k" * 20, "1700000000", body)
    assert sig == "sha256=" + hmac.new(b"k" * 20, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert verify("k" * 20, "1700000000", body, sig, now=1700000100)
    assert not verify("k" * 20, "1700000000", body, sig, now=1700000400)  # replayed later
    assert not verify("k" * 20, "1700000001", body, sig, now=1700000000)  # timestamp swapped
    assert not verify("k" * 20, "1700000000", b'{"a":2}', sig, now=1700000000)


def test_event_document():
    doc = event_document(event("escalated", "critical", "high"))
    assert doc == {
        "schema": "vigil.alert.v1", "event_id": 42, "event": "escalated", "at": "2026-12-01T10:30:05.123456+00:00",
        "severity": "critical", "previous_severity": "high", "reason": "observed", "actor": "analysis",
        "finding": {
            "id": 7, "type": "runtime_drift", "status": "open", "severity": "critical", "subject": "/tmp/xmrig",
            "cluster": {"id": "c-1", "name": "prod-eu"}, "namespace": "shop",
            "workload": {"kind": "Deployment", "name": "web"},
            "image": "registry.example.com/shop/web:1.4@sha256:" + "c" * 64, "evidence": {"path": "/tmp/xmrig"},
            "first_seen_at": "2026-12-01T10:30:05.123456+00:00", "last_seen_at": "2026-12-01T10:30:05.123456+00:00",
        },
    }  # fmt: skip


def test_syslog_message_is_rfc5424_with_escaped_structured_data():
    nasty = '/tmp/a "quoted" ]bracket\\ é'
    raw = rfc5424(event(subject=nasty), facility=16, hostname="node-1", app_name="vigil", procid="123")
    m = parser.parse(raw)
    assert (m.facility, m.severity, m.timestamp, m.hostname, m.app_name, m.procid, m.msgid, m.bom) == (
        16, 3, "2026-12-01T10:30:05.123456Z", "node-1", "vigil", "123", "finding.opened", True,
    )  # fmt: skip
    assert m.sd == {
        "vigil@32473": {
            "event": "opened", "event_id": "42", "finding_id": "7", "type": "runtime_drift", "severity": "high",
            "status": "open", "cluster": "c-1", "cluster_name": "prod-eu", "namespace": "shop",
            "workload": "Deployment/web",
            "image": "registry.example.com/shop/web:1.4@sha256:" + "c" * 64, "subject": nasty,
        }
    }  # fmt: skip
    assert (
        m.msg
        == f"Vigil finding opened: high runtime_drift {nasty} [cluster=prod-eu namespace=shop workload=Deployment/web]"
    )
    resolved = parser.parse(rfc5424(event("resolved", "critical"), 4, "n", "vigil", "1"))
    assert (resolved.facility, resolved.severity, resolved.msgid) == (4, 5, "finding.resolved")
    assert octet_counted(b"<1>1 x") == b"6 <1>1 x"


def test_slack_message_escapes_untrusted_text():
    msg = slack_message(event("escalated", "critical", "high", subject="<script>&"))
    assert msg["text"] == (
        "Vigil finding escalated: critical (was high) runtime_drift &lt;script&gt;&amp; "
        "[cluster=prod-eu namespace=shop workload=Deployment/web]"
    )
    assert msg["blocks"][0]["text"]["text"] == ":red_circle: *Finding escalated: runtime_drift*\n`&lt;script&gt;&amp;`"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in msg["blocks"][1]["fields"]}
    assert fields == {"*Severity*": "critical (was high)", "*Cluster*": "prod-eu", "*Namespace*": "shop",
                      "*Workload*": "Deployment/web", "*Image*": "registry.example.com/shop/web:1.4@sha256:" + "c" * 64,
                      "*Finding*": "#7"}  # fmt: skip
    assert orjson.loads(OUTPUTS["slack"]({}, {"url": "https://h"}).render(event())) == slack_message(event())
