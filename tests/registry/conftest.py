"""Fixtures: real docker-registry servers (anonymous, htpasswd) and a small programmable proxy in front of them."""

from __future__ import annotations

import http.server
import threading

import pytest
from registry_helpers import USERS, Proxy, Seen, make_client

from vigil.devtools.registry_server import RegistryServer


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("auth-registry"), users=USERS) as server:
        yield server


@pytest.fixture
def client(registry):
    with make_client(registry.host) as c:
        yield c


@pytest.fixture
def proxy(registry):
    state = Proxy(upstream=registry.url)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, dict(self.headers.items()))
            state.seen.append(seen)
            answer = state.hook(seen)
            if answer is None:
                answer = state.rewrite(seen, state.forward(seen, body))
            status, headers, payload = answer
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
