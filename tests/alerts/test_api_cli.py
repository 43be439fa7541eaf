"""Managing outputs: admin-only API with field-named validation errors, and `vigil alerts` through it."""

from __future__ import annotations

import time

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from vigil.service.app import create_app
from vigil.service.cli.alerts import alerts_app
from vigil.service.settings import AlertsSettings, Settings
from vigil.service.store.tokens import issue_token

from .conftest import WEBHOOK_SECRET, add_output, api, drift, record

runner = CliRunner()


def test_viewer_and_anonymous_are_refused(live_service, webhook):
    svc = live_service
    out = add_output(svc, name="hook", kind="webhook", url=webhook.url)
    viewer = svc.token("viewer")
    calls = [
        ("GET", "/api/v1/alerts/outputs", None),
        ("GET", f"/api/v1/alerts/outputs/{out['id']}", None),
        ("POST", "/api/v1/alerts/outputs", {"name": "x", "kind": "syslog", "address": "127.0.0.1:514"}),
        ("DELETE", f"/api/v1/alerts/outputs/{out['id']}", None),
        ("POST", f"/api/v1/alerts/outputs/{out['id']}/test", None),
        ("GET", "/api/v1/alerts/dead-letters", None),
        ("GET", "/api/v1/alerts/kinds", None),
    ]
    for method, path, body in calls:
        resp = api(svc, method, path, token=viewer, json=body)
        assert resp.status_code == 403, (method, path)
        assert resp.json() == {
            "error": "forbidden",
            "detail": "a viewer token cannot do this; it needs a token with role admin",
        }
        anon = api(svc, method, path, token="vgl_u_nope", json=body)
        assert anon.status_code == 401
    assert webhook.requests == []  # the refused test call sent nothing
    assert [o["name"] for o in api(svc, "GET", "/api/v1/alerts/outputs").json()["items"]] == ["hook"]


@pytest.mark.parametrize(
    "body,field,message",
    [
        (
            {"name": "h", "kind": "webhook", "url": "ftp://x.example.com/"},
            "body.url",
            "scheme 'ftp' is not allowed; use https (or http to a loopback host)",
        ),
        (
            {"name": "h", "kind": "webhook", "url": "http://siem.example.com/in"},
            "body.url",
            "plain http to 'siem.example.com' would send alerts unencrypted; use https, or set allow_insecure_http",
        ),
        (
            {"name": "h", "kind": "slack", "url": "https://hooks.slack.com/x", "threshold": "urgent"},
            "body.threshold",
            "Input should be 'critical', 'high', 'medium' or 'low'",
        ),
        (
            {"name": "h", "kind": "syslog", "address": "siem.example.com"},
            "body.address",
            "'siem.example.com' is not host:port (or [ipv6]:port)",
        ),
        (
            {"name": "h", "kind": "syslog", "address": "siem:99999"},
            "body.address",
            "port 99999 is not between 1 and 65535",
        ),
        (
            {"name": "h", "kind": "syslog", "address": "siem:514", "protocol": "tls"},
            "body.protocol",
            "Input should be 'udp' or 'tcp'",
        ),
        (
            {"name": "h", "kind": "webhook", "url": "https://x.example.com", "secret": "short"},
            "body.secret",
            "String should have at least 16 characters",
        ),
        (
            {"name": "Has Space", "kind": "syslog", "address": "siem:514"},
            "body.name",
            "String should match pattern '^[a-z0-9][a-z0-9._-]*$'",
        ),
        (
            {"name": "h", "kind": "syslog", "address": "siem:514", "events": []},
            "body.events",
            "List should have at least 1 item after validation, not 0",
        ),
        (
            {"name": "h", "kind": "syslog", "address": "siem:514", "colour": "red"},
            "body.colour",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_output_names_the_field(live_service, body, field, message):
    resp = api(live_service, "POST", "/api/v1/alerts/outputs", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"] == [{"field": field, "message": message}]


def test_kind_and_name_conflicts(live_service):
    svc = live_service
    resp = api(svc, "POST", "/api/v1/alerts/outputs", json={"name": "m", "kind": "email"})
    assert resp.status_code == 422
    assert resp.json() == {
        "error": "invalid_request",
        "detail": "body.kind: 'email' is not one of webhook, slack, syslog",
    }
    missing = api(svc, "POST", "/api/v1/alerts/outputs", json={"name": "m"})
    assert missing.status_code == 422 and missing.json()["errors"] == [
        {"field": "body.kind", "message": "Field required"}
    ]
    add_output(svc, name="siem", kind="syslog", address="127.0.0.1:514")
    dup = api(
        svc, "POST", "/api/v1/alerts/outputs", json={"name": "siem", "kind": "syslog", "address": "127.0.0.1:515"}
    )
    assert dup.status_code == 409
    assert dup.json() == {"error": "conflict", "detail": "body.name: an alert output named 'siem' already exists"}
    allowed = add_output(
        svc, name="lan", kind="webhook", url="http://siem.lan:8080/in", allow_insecure_http=True, secret=WEBHOOK_SECRET
    )
    assert allowed["settings"] == {"url": "http://siem.lan:8080/in", "secret": "***", "allow_insecure_http": True}
    assert api(svc, "DELETE", "/api/v1/alerts/outputs/999").json() == {
        "error": "not_found",
        "detail": "alert output 999 does not exist",
    }


def test_new_output_starts_at_the_end_of_history(live_service, webhook):
    svc = live_service
    cid, _ = svc.register("prod-eu")
    record(svc, drift(cid, "/tmp/before"))
    out = add_output(svc, name="hook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET, threshold="low",
                     events=["resolved", "opened", "opened"])  # fmt: skip
    assert out["events"] == ["opened", "resolved"] and out["cursor"] == 1 and out["dead_letters"] == 0
    record(svc, drift(cid, "/tmp/after"))
    assert svc.app.state.workers.alerts.dispatch_once().delivered == 1
    assert [r.json()["finding"]["subject"] for r in webhook.requests] == ["/tmp/after"]


def test_cli_add_list_test_remove(live_service, webhook, syslog_tcp):
    svc = live_service
    conn = ["--url", svc.url, "--token", svc.admin_token]
    res = runner.invoke(
        alerts_app, ["add", "hook", "--kind", "webhook", "--target", webhook.url, "--threshold", "high", *conn]
    )
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "added alert output 1 (hook, webhook, threshold high)"
    secret = lines[1]
    assert len(secret) >= 32
    res = runner.invoke(alerts_app, ["add", "siem", "--kind", "syslog", "--address", syslog_tcp.address,
                                     "--protocol", "tcp", "--events", "opened,resolved", *conn])  # fmt: skip
    assert res.exit_code == 0 and res.stdout == "added alert output 2 (siem, syslog, threshold medium)\n"
    from vigil.cli import app as vigil_app  # mounted as `vigil alerts`

    res = runner.invoke(vigil_app, ["alerts", "list", "-o", "json", *conn])
    listed = orjson.loads(res.stdout)
    assert [(o["name"], o["kind"], o["threshold"], o["events"]) for o in listed] == [
        ("hook", "webhook", "high", ["opened", "reopened", "escalated", "resolved"]),
        ("siem", "syslog", "medium", ["opened", "resolved"]),
    ]
    assert secret not in res.stdout
    res = runner.invoke(alerts_app, ["test", "siem", *conn])
    assert res.exit_code == 0 and res.stdout == "test alert delivered to siem\n"
    assert len(syslog_tcp.wait_for(1)) == 1
    res = runner.invoke(alerts_app, ["test", "1", *conn])
    assert res.exit_code == 0 and webhook.requests[0].json()["event"] == "test"
    bad = runner.invoke(alerts_app, ["add", "x", "--kind", "syslog", "--address", "nohost", *conn])
    assert bad.exit_code == 1
    assert "422 invalid_request: body.address: 'nohost' is not host:port (or [ipv6]:port)" in bad.stderr
    res = runner.invoke(alerts_app, ["remove", "hook", *conn])
    assert res.exit_code == 0 and res.stdout == "removed alert output 1 (hook)\n"
    res = runner.invoke(alerts_app, ["remove", "hook", *conn])
    assert res.exit_code == 1 and "OUTPUT: no alert output with id or name 'hook'" in res.stderr
    viewer = runner.invoke(alerts_app, ["list", "--url", svc.url, "--token", svc.token("viewer")])
    assert viewer.exit_code == 1 and "403 forbidden" in viewer.stderr
    none = runner.invoke(alerts_app, ["list", "--url", svc.url], env={"VIGIL_TOKEN": ""})
    assert none.exit_code == 2 and "no API token" in none.stderr


def test_lifespan_runs_the_dispatcher_when_configured(tmp_path, webhook):
    settings = Settings(data_dir=tmp_path, alerts=AlertsSettings(background=True, tick=0.05))
    app = create_app(settings)
    with app.state.engine.begin() as conn:
        token = issue_token(conn, role="admin", name="t").secret
    with TestClient(app) as client:
        dispatcher = app.state.workers.alerts
        assert dispatcher.running
        resp = client.post("/api/v1/alerts/outputs", headers={"Authorization": f"Bearer {token}"},
                           json={"name": "hook", "kind": "webhook", "url": webhook.url, "secret": WEBHOOK_SECRET,
                                 "threshold": "low"})  # fmt: skip
        assert resp.status_code == 201
        from vigil.service.store.findings import Observation, observe

        with app.state.engine.begin() as conn:
            observe(conn, Observation(dedup_key="k1", type="suspicious_exec", severity="medium", subject="sh -i"))
        deadline = time.monotonic() + 5
        while not webhook.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [r.json()["finding"]["subject"] for r in webhook.requests] == ["sh -i"]
    assert not dispatcher.running  # stopped with the app
    # off by default (tests call dispatch_once themselves); on when the service runs background work
    assert not Settings(data_dir=tmp_path).alerts.background
    assert Settings(data_dir=tmp_path).all_in_background().alerts.background
