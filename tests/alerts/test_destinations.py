"""Where alerts may go: public addresses only unless the operator's allow-list names the destination,
checked on the name at creation and on every resolved address before connecting."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from vigil.devtools.kubeapi.tls import make_serving_cert
from vigil.devtools.service import LiveService
from vigil.service.analysis.alerts.destinations import DestinationPolicy, DestinationRefused

from .conftest import WEBHOOK_SECRET, HttpReceiver, add_output, api

A = ipaddress.ip_address
RULE = "alerts go only to public addresses unless VIGIL_ALERT_DESTINATIONS lists the destination"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.9", "private"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("fd00::7", "private"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "non-public"),
    ],
)
def test_default_policy_refuses_internal_addresses(address, kind):
    with pytest.raises(DestinationRefused) as exc:
        DestinationPolicy().check_addresses("hooks.corp.example", 443, [A("8.8.8.8"), A(address)])
    assert str(exc.value) == (
        f"alert destination hooks.corp.example:443 resolves to {A(address)}, which is internal ({kind}); alerts go"
        " only to public addresses unless VIGIL_ALERT_DESTINATIONS lists the destination"
    )


def test_default_policy_allows_public_addresses_and_refuses_internal_literals_at_creation():
    policy = DestinationPolicy()
    policy.check_addresses("hooks.slack.com", 443, [A("34.226.36.44"), A("2600:1f18::1")])
    policy.check_name("hooks.slack.com", 443)  # a name is judged on its addresses, when connecting
    with pytest.raises(DestinationRefused, match=r"^alert destination 10\.0\.0\.7:8500 is internal \(private\);"):
        policy.check_name("10.0.0.7", 8500)
    with pytest.raises(DestinationRefused, match=r"^alert destination localhost:80 resolves to 127\.0\.0\.1,"):
        policy.check_name("localhost", 80)


def test_allow_list_entries_names_wildcards_ports_and_ranges():
    policy = DestinationPolicy.parse(" hooks.slack.com, *.corp.example , siem.lan:6514, 10.20.0.0/16, [fd00::1]:514")
    policy.check_addresses("hooks.slack.com", 443, [A("10.9.9.9")])  # a named host may point anywhere
    policy.check_addresses("Alerts.Corp.Example.", 443, [A("192.168.1.1")])
    policy.check_addresses("siem.lan", 6514, [A("172.16.0.2")])
    policy.check_addresses("anything.lan", 80, [A("10.20.3.4")])
    policy.check_addresses("fd00::1", 514, [A("fd00::1")])
    policy.check_name("10.20.0.9", 9000)
    policy.check_name("other.lan", 80)  # may resolve into 10.20.0.0/16: decided when connecting
    listed = "hooks.slack.com, *.corp.example, siem.lan:6514, 10.20.0.0/16, [fd00::1]:514"
    refusals = [
        (
            lambda: policy.check_addresses("corp.example", 443, [A("10.20.0.1"), A("8.8.8.8")]),
            "corp.example:443 (address 8.8.8.8)",
        ),
        (lambda: policy.check_addresses("siem.lan", 514, [A("172.16.0.2")]), "siem.lan:514 (address 172.16.0.2)"),
        (lambda: policy.check_name("10.30.0.1", 80), "10.30.0.1:80"),
        (lambda: policy.check_addresses("fd00::1", 515, [A("fd00::1")]), "[fd00::1]:515"),
    ]
    for call, where in refusals:
        with pytest.raises(DestinationRefused) as exc:
            call()
        assert str(exc.value) == f"alert destination {where} is not in VIGIL_ALERT_DESTINATIONS ({listed})"
    only_names = DestinationPolicy.parse("hooks.slack.com")
    with pytest.raises(DestinationRefused, match=r"^alert destination evil\.example:443 is not in"):
        only_names.check_name("evil.example", 443)


@pytest.mark.parametrize(
    ("text", "entry", "rule"),
    [
        ("hooks.slack.com,,bad host", "bad host", "'bad host' is not a valid host name or IP address"),
        ("10.0.0.0/33", "10.0.0.0/33", "'10.0.0.0/33' is not an address range (expected e.g. 10.0.0.0/8)"),
        ("siem:99999", "siem:99999", "port 99999 is not between 1 and 65535"),
    ],
)
def test_bad_allow_list_entries_name_the_setting_and_the_entry(text, entry, rule):
    with pytest.raises(ValueError) as exc:
        DestinationPolicy.parse(text)
    assert str(exc.value) == f"VIGIL_ALERT_DESTINATIONS: entry {entry!r}: {rule}"


@pytest.fixture
def public_only(tmp_path, monkeypatch):
    """A service with no allow-list: what a deployment gets by default."""
    monkeypatch.delenv("VIGIL_ALERT_DESTINATIONS")
    svc = LiveService(tmp_path / "data").start()
    yield svc
    svc.stop()


def test_outputs_at_internal_addresses_are_refused_at_creation(public_only, webhook, syslog_tcp):
    svc = public_only
    cases = [
        ({"kind": "webhook", "url": webhook.url}, f"body.url: alert destination 127.0.0.1:{webhook.port} is"),
        ({"kind": "slack", "url": "http://localhost:9/x"}, "body.url: alert destination localhost:9 resolves to"),
        ({"kind": "webhook", "url": "https://169.254.169.254/x"}, "body.url: alert destination 169.254.169.254:443 is"),
        (
            {"kind": "syslog", "address": f"127.0.0.1:{syslog_tcp.port}", "protocol": "tcp"},
            f"body.address: alert destination 127.0.0.1:{syslog_tcp.port} is",
        ),
    ]
    kinds = [
        "internal (loopback)",
        "127.0.0.1, which is internal (loopback)",
        "internal (link-local)",
        "internal (loopback)",
    ]
    for (body, detail), kind in zip(cases, kinds, strict=True):
        resp = api(svc, "POST", "/api/v1/alerts/outputs", json={"name": "x", **body})
        assert resp.status_code == 422, resp.text
        assert resp.json() == {
            "error": "invalid_request",
            "detail": f"{detail} {kind}; {RULE}",
        }
    assert api(svc, "GET", "/api/v1/alerts/outputs").json()["items"] == []
    assert webhook.requests == [] and syslog_tcp.messages == []


def test_a_name_resolving_inward_is_refused_before_connecting(public_only, webhook):
    """A host name passes creation (it is not resolved then); the address it resolves to when sending
    is internal here, so nothing is sent and the admin is told why."""
    svc = public_only
    name = socket.gethostname()
    address = ipaddress.ip_address(socket.getaddrinfo(name, webhook.port, type=socket.SOCK_STREAM)[0][4][0])
    assert not address.is_global, f"{name} resolves to public {address}: this test needs an internal name"
    out = add_output(
        svc, name="inward", kind="webhook", url=f"http://{name}:{webhook.port}/vigil/hook", allow_insecure_http=True
    )
    resp = api(svc, "POST", f"/api/v1/alerts/outputs/{out['id']}/test")
    assert resp.status_code == 502
    detail = resp.json()["detail"]
    assert detail.startswith(f"alert output 'inward': alert destination {name}:{webhook.port} resolves to {address}")
    assert detail.endswith("unless VIGIL_ALERT_DESTINATIONS lists the destination")
    assert webhook.requests == []


def test_allow_listed_destination_is_delivered_to_the_checked_address(tmp_path, monkeypatch, webhook):
    monkeypatch.setenv("VIGIL_ALERT_DESTINATIONS", f"127.0.0.1:{webhook.port}")
    svc = LiveService(tmp_path / "data").start()
    try:
        out = add_output(svc, name="hook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET)
        assert api(svc, "POST", f"/api/v1/alerts/outputs/{out['id']}/test").json() == {
            "delivered": True,
            "output": "hook",
        }
        [got] = webhook.requests
        assert got.signature_ok and got.headers["host"] == f"127.0.0.1:{webhook.port}"
        resp = api(
            svc, "POST", "/api/v1/alerts/outputs", json={"name": "y", "kind": "webhook", "url": "https://8.8.8.8/x"}
        )
        assert resp.json()["detail"] == (
            f"body.url: alert destination 8.8.8.8:443 is not in VIGIL_ALERT_DESTINATIONS (127.0.0.1:{webhook.port})"
        )
    finally:
        svc.stop()


class _TlsReceiver(HttpReceiver):
    def __init__(self, hosts: list[str]) -> None:
        super().__init__(path="/hook")
        self.cert = make_serving_cert(hosts)
        ctx = self.cert.server_context()
        self.server.shutdown()
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


@pytest.mark.parametrize("cert_hosts", [["localhost"], ["127.0.0.1"]])
def test_https_to_a_pinned_address_still_checks_the_certificate_against_the_name(tmp_path, monkeypatch, cert_hosts):
    """The connection goes to the address that was checked, while TLS (SNI and the certificate check)
    and the Host header keep the configured name: a certificate for the bare address does not do."""
    receiver = _TlsReceiver(cert_hosts)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(receiver.cert.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    svc = LiveService(tmp_path / "data").start()
    try:
        out = add_output(svc, name="tls", kind="slack", url=f"https://localhost:{receiver.port}/hook")
        resp = api(svc, "POST", f"/api/v1/alerts/outputs/{out['id']}/test")
        if cert_hosts == ["localhost"]:
            assert resp.json() == {"delivered": True, "output": "tls"}
            [got] = receiver.requests
            assert got.headers["host"] == f"localhost:{receiver.port}"
        else:
            assert resp.status_code == 502
            assert "CERTIFICATE_VERIFY_FAILED" in resp.json()["detail"]
            assert receiver.requests == []
    finally:
        svc.stop()
        receiver.close()
