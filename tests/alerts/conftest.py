"""Receivers started per test, and helpers that drive findings through the store like analysis does."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from vigil.service.analysis.alerts.destinations import DestinationPolicy
from vigil.service.store.findings import Observation, observe, set_status
from vigil.service.store.schema import finding_events

from .receivers import HttpReceiver, SyslogTcpReceiver, SyslogUdpReceiver

WEBHOOK_SECRET = "whsec-7f3c9a1e5b2d4c6e8a0b"
SLACK_PATH = "/services/T0VIGIL/B0ALERTS/xoxSLACKtokenPART"


# The dispatchers tests build themselves take their policy as an argument, not from the environment.
LOOPBACK = DestinationPolicy.parse("127.0.0.1,::1,localhost")


@pytest.fixture(autouse=True)
def loopback_receivers_allowed(monkeypatch):
    """The receivers here listen on loopback, which the default destination policy refuses; the
    operator's allow-list is how a deployment opts in, so these tests opt in the same way."""
    monkeypatch.setenv("VIGIL_ALERT_DESTINATIONS", "127.0.0.1,::1,localhost")


@pytest.fixture
def webhook():
    r = HttpReceiver(secret=WEBHOOK_SECRET, path="/vigil/hook")
    yield r
    r.close()


@pytest.fixture
def slack():
    r = HttpReceiver(path=SLACK_PATH)
    yield r
    r.close()


@pytest.fixture
def syslog_udp():
    r = SyslogUdpReceiver()
    yield r
    r.close()


@pytest.fixture
def syslog_tcp():
    r = SyslogTcpReceiver()
    yield r
    r.close()


def api(svc, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
    return httpx.request(
        method, f"{svc.url}{path}", headers={"Authorization": f"Bearer {token or svc.admin_token}"}, timeout=30, **kw
    )


def add_output(svc, **body) -> dict:
    resp = api(svc, "POST", "/api/v1/alerts/outputs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def drift(cluster_id: str, path: str = "/tmp/xmrig", severity: str = "high", workload: str = "web") -> Observation:
    return Observation(
        dedup_key=f"runtime_drift|{cluster_id}|shop|Deployment|{workload}|{path}",
        type="runtime_drift",
        severity=severity,
        subject=path,
        evidence={"path": path, "sha256": "ab" * 32},
        cluster_id=cluster_id,
        namespace="shop",
        workload_kind="Deployment",
        workload_name=workload,
    )


def record(svc, obs: Observation) -> int:
    with svc.engine.begin() as conn:
        return observe(conn, obs)[0]


def change_status(svc, finding_id: int, status: str, reason: str) -> None:
    with svc.engine.begin() as conn:
        assert set_status(conn, finding_id, status, reason, "token:test")


def last_event(svc, finding_id: int):
    with svc.engine.connect() as conn:
        return conn.execute(
            select(finding_events)
            .where(finding_events.c.finding_id == finding_id)
            .order_by(finding_events.c.id.desc())
            .limit(1)
        ).one()


def events_of(svc, finding_id: int) -> list:
    """The finding's history, oldest first."""
    with svc.engine.connect() as conn:
        return conn.execute(
            select(finding_events).where(finding_events.c.finding_id == finding_id).order_by(finding_events.c.id)
        ).all()
