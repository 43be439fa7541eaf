"""A tiny stand-in for the service's ingest endpoints, on loopback, recording what it receives."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class IngestServer:
    def __init__(
        self,
        port: int = 0,
        token: str = "s3cret-token",
        heartbeat_answer: dict | None = None,
        refuse_batches: int | None = None,
    ):
        """``refuse_batches``: answer every runtime batch with this status (and a detail) instead."""
        self.token = token
        self.refuse_batches = refuse_batches
        self.batches: list[dict] = []
        self.heartbeats: list[dict] = []
        self.heartbeat_answer = heartbeat_answer or {}
        self.applied: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._reply(401, {"detail": "bad credential"})
                    return
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                doc = json.loads(body)
                if self.path == "/api/v1/ingest/runtime" and server.refuse_batches:
                    self._reply(server.refuse_batches, {"detail": "refused"})
                elif self.path == "/api/v1/ingest/runtime":
                    applied = doc["batch_id"] not in server.applied
                    if applied:
                        server.applied.add(doc["batch_id"])
                        server.batches.append(doc)
                    self._reply(200, {"batch_id": doc["batch_id"], "applied": applied})
                elif self.path == "/api/v1/ingest/sensor-heartbeat":
                    server.heartbeats.append(doc)
                    self._reply(200, server.heartbeat_answer)
                else:
                    self._reply(404, {"detail": "not found"})

            def _reply(self, code: int, doc: dict) -> None:
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
