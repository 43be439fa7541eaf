"""A real HTTPS admission webhook for the kubeapi tests: answers AdmissionReviews with what a test decides."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vigil.devtools.kubeapi.tls import ServingCert, make_serving_cert

# What a test's answer function returns: the AdmissionReview ``response`` without its uid.
Answer = Callable[[dict], dict]
SERVICE_HOST = "hook.webhooks.svc"  # the DNS name of the Service "webhooks/hook"


def allow(_request: dict) -> dict:
    return {"allowed": True}


class WebhookServer:
    """HTTPS on loopback; ``answers[path]`` decides, ``reviews`` keeps (path, request) in arrival order.

    ``hold`` makes the handler wait (for a timeout test) until ``release()``; nothing sleeps.
    """

    def __init__(self) -> None:
        self.cert: ServingCert = make_serving_cert(["127.0.0.1", "localhost", SERVICE_HOST])
        self.answers: dict[str, Answer] = {}
        self.raw_answers: dict[str, Callable[[dict], Any]] = {}
        self.reviews: list[tuple[str, dict]] = []
        self.hold = threading.Event()
        self._released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                review = json.loads(self.rfile.read(length))
                path = self.path.split("?")[0]
                server.reviews.append((self.path, review["request"]))
                if server.hold.is_set():
                    server._released.wait(30)
                if path in server.raw_answers:
                    body = server.raw_answers[path](review["request"])
                else:
                    response = dict(server.answers.get(path, allow)(review["request"]))
                    response["uid"] = review["request"]["uid"]
                    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
                data = json.dumps(body).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass  # the API server gave up (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = self.cert.server_context().wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.cert.ca_pem).decode()

    def release(self) -> None:
        self._released.set()

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


def patch_of(ops: list[dict]) -> dict:
    """A mutating answer's fields for a JSON patch."""
    return {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


def hook(
    name: str,
    client: dict,
    *,
    rules: list[dict] | None = None,
    failure: str = "Fail",
    timeout: int | None = None,
    side_effects: str = "None",
    **extra: Any,
) -> dict:
    out: dict[str, Any] = {
        "name": name,
        "clientConfig": client,
        "rules": rules
        or [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "failurePolicy": failure,
        "sideEffects": side_effects,
        "admissionReviewVersions": ["v1"],
    }
    if timeout is not None:
        out["timeoutSeconds"] = timeout
    out.update(extra)
    return out


def configuration(kind: str, name: str, *hooks: dict) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": list(hooks),
    }
