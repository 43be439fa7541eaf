"""A strict RFC 5424 parser for the tests (the grammar of section 6), independent of the sender."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(
    rb"^<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<ts>\S+) (?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) "
    rb"(?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) "
)
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
_SD_NAME = re.compile(rb"[!-~]{1,32}")


class Invalid(ValueError):
    pass


@dataclass
class Message:
    facility: int
    severity: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]
    msg: str
    bom: bool


def _name(data: bytes, i: int) -> tuple[str, int]:
    j = i
    while j < len(data) and 33 <= data[j] <= 126 and data[j] not in b'= ]"':
        j += 1
    if j == i or j - i > 32:
        raise Invalid(f"bad SD-NAME at {i}")
    return data[i:j].decode("ascii"), j


def parse(data: bytes) -> Message:
    m = _HEADER.match(data)
    if not m:
        raise Invalid(f"header does not match RFC 5424: {data[:120]!r}")
    pri = int(m["pri"])
    if pri > 191 or m["version"] != b"1":
        raise Invalid(f"PRI {pri} / VERSION {m['version']!r}")
    ts = m["ts"].decode()
    if not _TS.match(ts):
        raise Invalid(f"TIMESTAMP {ts!r}")
    i = m.end()
    sd: dict[str, dict[str, str]] = {}
    if data[i : i + 1] == b"-":
        i += 1
    else:
        while data[i : i + 1] == b"[":
            sd_id, i = _name(data, i + 1)
            if sd_id in sd:
                raise Invalid(f"SD-ID {sd_id} twice")
            params: dict[str, str] = {}
            while data[i : i + 1] == b" ":
                pname, i = _name(data, i + 1)
                if data[i : i + 2] != b'="':
                    raise Invalid(f'param {pname} has no ="')
                i += 2
                value = bytearray()
                while True:
                    if i >= len(data):
                        raise Invalid("unterminated PARAM-VALUE")
                    c = data[i]
                    if c == 0x5C and data[i + 1 : i + 2] in (b'"', b"\\", b"]"):
                        value.append(data[i + 1])
                        i += 2
                    elif c == 0x22:
                        i += 1
                        break
                    elif c == 0x5D:
                        raise Invalid(f"unescaped ] in {pname}")
                    else:
                        value.append(c)
                        i += 1
                params[pname] = value.decode("utf-8")
            if data[i : i + 1] != b"]":
                raise Invalid(f"SD-ELEMENT {sd_id} not closed at {i}")
            i += 1
            sd[sd_id] = params
    msg = b""
    if i < len(data):
        if data[i : i + 1] != b" ":
            raise Invalid(f"expected SP before MSG at {i}")
        msg = data[i + 1 :]
    bom = msg.startswith(b"\xef\xbb\xbf")
    return Message(pri // 8, pri % 8, ts, m["host"].decode(), m["app"].decode(), m["procid"].decode(),
                   m["msgid"].decode(), sd, msg[3:].decode("utf-8") if bom else msg.decode("utf-8"), bom)  # fmt: skip
