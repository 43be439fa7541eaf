"""Syslog for SIEMs: RFC 5424 messages with the finding in structured data, over UDP (RFC 5426,
one message per datagram) or TCP (RFC 6587 octet-counting framing: ``<length> <message>``)."""

from __future__ import annotations

import os
import socket
from datetime import UTC
from typing import Literal

from pydantic import Field, field_validator

from vigil.service.analysis.alerts.events import AlertEvent, headline
from vigil.service.analysis.alerts.validation import check_host, parse_address
from vigil.service.jobs.alerts.outputs.base import DeliveryFailed, Output, OutputRequest
from vigil.service.jobs.alerts.outputs.destination import resolve_allowed

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8, "cron": 9,
    "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
# Syslog severities: 2 crit, 3 err, 4 warning, 5 notice, 6 info.
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5}
CLOSED_SEVERITY = 5  # a resolved or suppressed finding is news, not an emergency
INFO = 6
# 32473 is the enterprise number RFC 5612 sets aside for examples; SIEM rules match on "vigil@".
SD_ID = "vigil@32473"
MAX_SUBJECT = 1024
MAX_UDP_BYTES = 8192
BOM = "\ufeff"


def _header_field(text: str, limit: int) -> str:
    """Header fields are printable US-ASCII without spaces (RFC 5424 section 6.2)."""
    cleaned = "".join(c if 33 <= ord(c) <= 126 else "_" for c in text)[:limit]
    return cleaned or "-"


def _param_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _cap(text: str) -> str:
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1] + "…"


def syslog_severity(ev: AlertEvent) -> int:
    if ev.kind in ("resolved", "suppressed"):
        return CLOSED_SEVERITY
    return SYSLOG_SEVERITY.get(ev.severity, INFO) if ev.kind != "test" else INFO


def structured_data(ev: AlertEvent) -> list[tuple[str, str]]:
    f = ev.finding
    params = [
        ("event", ev.kind),
        ("event_id", str(ev.event_id)),
        ("finding_id", str(f.id)),
        ("type", f.type),
        ("severity", ev.severity),
        ("previous_severity", ev.previous_severity),
        ("status", ev.status),
        ("cluster", f.cluster_id),
        ("cluster_name", f.cluster_name),
        ("namespace", f.namespace),
        ("workload", f.workload),
        ("image", f.image),
        ("subject", _cap(f.subject)),
    ]
    return [(k, v) for k, v in params if v]


def rfc5424(ev: AlertEvent, facility: int, hostname: str, app_name: str, procid: str) -> bytes:
    pri = facility * 8 + syslog_severity(ev)
    at = ev.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    msgid = _header_field(f"finding.{ev.kind}", 32)
    sd = "[" + SD_ID + "".join(f' {k}="{_param_value(v)}"' for k, v in structured_data(ev)) + "]"
    header = (
        f"<{pri}>1 {at} {_header_field(hostname, 255)} {_header_field(app_name, 48)} "
        f"{_header_field(procid, 128)} {msgid}"
    )
    text = headline(ev)
    return f"{header} {sd} {BOM}{_cap(text)}".encode()


def octet_counted(message: bytes) -> bytes:
    return str(len(message)).encode("ascii") + b" " + message


class SyslogRequest(OutputRequest):
    kind: Literal["syslog"]
    address: str = Field(description="host:port of the syslog receiver, e.g. siem.example.com:514")
    protocol: Literal["udp", "tcp"] = "udp"
    facility: Literal[tuple(FACILITIES)] = "local0"  # type: ignore[valid-type]
    app_name: str = Field("vigil", min_length=1, max_length=48, pattern=r"^[!-~]+$")
    hostname: str | None = Field(None, description="HOSTNAME field [default: this machine's name]")

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        parse_address(v)
        return v.strip()

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str | None) -> str | None:
        return None if v is None else check_host(v)


class SyslogOutput(Output):
    kind = "syslog"
    summary = "RFC 5424 syslog over UDP or TCP (octet-counting), finding in structured data"
    Request = SyslogRequest
    destination_field = "address"

    def render(self, event: AlertEvent) -> bytes:
        return rfc5424(
            event,
            FACILITIES[self.config.get("facility") or "local0"],
            self.config.get("hostname") or socket.gethostname(),
            self.config.get("app_name") or "vigil",
            str(os.getpid()),
        )

    def send(self, payload: bytes, event: AlertEvent) -> None:
        host, port = parse_address(self.config["address"])
        proto = self.config.get("protocol", "udp")
        where = f"syslog {proto} {self.config['address']}"
        try:
            if proto == "tcp":
                _, sockaddr = resolve_allowed(self.destinations, host, port)[0]
                with socket.create_connection(sockaddr[:2], timeout=self.timeout) as sock:
                    sock.sendall(octet_counted(payload))
                    sock.shutdown(socket.SHUT_WR)
            else:
                if len(payload) > MAX_UDP_BYTES:
                    raise DeliveryFailed(
                        f"{where}: message of {len(payload)} bytes exceeds {MAX_UDP_BYTES}; use tcp", permanent=True
                    )
                family, addr = resolve_allowed(self.destinations, host, port, socket.SOCK_DGRAM)[0]
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.settimeout(self.timeout)
                    # UDP confirms nothing; a closed port may still surface as ECONNREFUSED here.
                    sock.sendto(payload, addr)
        except DeliveryFailed:
            raise
        except OSError as exc:
            raise DeliveryFailed(f"{where}: {exc.__class__.__name__}: {exc}") from None

    @classmethod
    def destination(cls, config: dict, secrets: dict) -> tuple[str, int]:
        return parse_address(config["address"])

    def describe(self) -> dict:
        return dict(self.config)
