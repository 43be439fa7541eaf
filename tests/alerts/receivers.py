"""Real receivers on loopback, written independently of vigil's senders: an HTTP server that checks
the webhook signature, and syslog listeners over UDP and TCP (octet-counting framing)."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


@dataclass
class HttpRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    status: int  # what the receiver answered
    signature_ok: bool | None  # None when the receiver has no secret to check with

    def json(self):
        return orjson.loads(self.body)


class HttpReceiver:
    """Records every POST and answers with queued statuses, then ``default_status``."""

    def __init__(
        self, secret: str | None = None, path: str = "/hook", default_status: int = 200, reply: bytes = b"ok"
    ) -> None:
        self.secret = secret
        self.path = path
        self.default_status = default_status
        self.reply = reply
        self.requests: list[HttpRequest] = []
        self._statuses: deque[int] = deque()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver._statuses.popleft() if receiver._statuses else receiver.default_status
                    if self.path.split("?")[0] != receiver.path:
                        status = 404
                    receiver.requests.append(
                        HttpRequest(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                            status,
                            receiver._check(self.headers, body),
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _check(self, headers, body: bytes) -> bool | None:
        if self.secret is None:
            return None
        ts = headers.get("X-Vigil-Timestamp", "")
        sig = headers.get("X-Vigil-Signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return False
        expected = "sha256=" + hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, sig)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def respond(self, *statuses: int) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    def accepted(self) -> list[HttpRequest]:
        return [r for r in self.requests if r.status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SyslogUdpReceiver:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


class SyslogTcpReceiver:
    """Accepts connections and splits each stream into RFC 6587 octet-counted frames."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        self.framing_errors: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            self._split(data)

    def _split(self, data: bytes) -> None:
        while data:
            length, sep, rest = data.partition(b" ")
            if not sep or not length.isdigit() or length.startswith(b"0"):
                self.framing_errors.append(f"bad MSG-LEN {length[:20]!r}")
                return
            n = int(length)
            if len(rest) < n:
                self.framing_errors.append(f"frame says {n} octets, {len(rest)} arrived")
                return
            self.messages.append(rest[:n])
            data = rest[n:]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()
