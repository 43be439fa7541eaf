"""The service contacts only the registries its trust policy trusts, through the mirror rule that
applies, and fetches tokens only where the realm rule allows: a cluster credential posting pods
whose images name loopback ports, and a trusted registry whose token endpoint is a loopback
plain-HTTP listener, make no connection to either. On both store backends, with the real service,
a real docker-registry and real sockets counting connections."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import httpx
import pytest

from vigil.devtools.oci import build_image, push, tar_layer
from vigil.devtools.service import LiveService
from vigil.registry import RegistryClient, RegistryConfig

from .helpers import FAST_RETRY, client_for, post, run_scans, snapshot
from .test_queue import digest


class CountingListener:
    """A TCP port that accepts and counts every connection, and answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        time.sleep(0.3)  # a connection the kernel completed is accepted (and counted) before the end
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class HostileRegistry:
    """A registry that answers every request 401 with a token endpoint at ``realm``."""

    def __init__(self, realm: str) -> None:
        self.requests = 0
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _answer(self):
                state.requests += 1
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"internal secret 10.0.0.7 says hello"}]}'
                self.send_response(401, "Secret Internal Banner")
                self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="svc"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listeners():
    image_port, token_port = CountingListener(), CountingListener()
    yield image_port, token_port
    image_port.close()
    token_port.close()


def test_untrusted_and_hostile_registries_are_never_contacted(tmp_path, database_url, registry, listeners):
    image_port, token_port = listeners
    hostile = HostileRegistry(realm=f"http://{token_port.host}/token")
    svc = LiveService(tmp_path / "data", database_url).start()
    try:
        trusted_image = build_image([tar_layer({"app/hello.txt": b"hello"})])
        mirrored_image = build_image([tar_layer({"app/mirrored.txt": b"mirrored"})])
        with client_for(registry.host) as pusher:
            push(pusher, f"{registry.host}/trust/app:1", trusted_image)
            push(pusher, f"{registry.host}/mirror/library/app:1", mirrored_image)
        # The service speaks plain HTTP to both loopback registries (an operator's registry config)
        config = RegistryConfig.from_mapping({registry.host: {"plain_http": True}, hostile.host: {"plain_http": True}})
        client = RegistryClient(config, retry=FAST_RETRY, timeout=5.0)
        svc.app.state.workers.contents.scanner.client = client
        svc.app.state.workers.contents.scanner.isolated = None  # scan in process, with the client set here
        svc.app.state.workers.integrity.client = client
        policy = {
            "trusted": [registry.host, hostile.host],
            "mirrors": [{"source": "docker.io", "mirror": f"{registry.host}/mirror"}],
        }
        r = httpx.put(
            f"{svc.url}/api/v1/policy/trust", json=policy, headers={"Authorization": f"Bearer {svc.admin_token}"}
        )
        assert r.status_code == 200, r.text

        cid, cred = svc.register("prod")
        running = [
            ("shop", "web", f"{registry.host}/trust/app:1", trusted_image.digest),
            ("shop", "mirrored", "docker.io/library/app:1", mirrored_image.digest),
            ("probe", "scan", f"{image_port.host}/x:1", digest(1)),
            ("probe", "token", f"{hostile.host}/x:1", digest(2)),
        ]
        post(svc, cred, snapshot(cid, running))
        report = run_scans(svc)
        svc.app.state.workers.integrity.run_pass(force=True)
        run_scans(svc)  # a second pass queues nothing new from an untrusted registry either

        scans = {}
        for pod in svc.list_all("/api/v1/pods", cluster=cid):
            pk = pod["containers"][0]["image_pk"]
            scans[pod["workload"]["name"]] = svc.get(f"/api/v1/images/{pk}/scan", token=svc.token("viewer")).json()
    finally:
        svc.stop()
        hostile.close()

    assert (image_port.connections, token_port.connections) == (0, 0)
    assert {s["digest"]: s["status"] for s in report["scanned"]} == {
        trusted_image.digest: "done",
        mirrored_image.digest: "done",
        digest(2): "failed",
    }
    assert scans["web"]["status"] == "done" and scans["web"]["source"] == f"{registry.host}/trust/app"
    # pulled where the cluster pulls it from: through the mirror rule, never from docker.io
    assert scans["mirrored"]["status"] == "done"
    assert scans["mirrored"]["source"] == f"{registry.host}/mirror/library/app"
    assert (scans["scan"]["status"], scans["scan"]["error"]) == (
        "not_scanned",
        f"not scanned: registry {image_port.host} is not trusted by the trust policy",
    )
    assert scans["token"]["status"] == "failed"
    assert scans["token"]["error"] == (
        f"{hostile.host}/x: registry {hostile.host}, repository x, reference {digest(2)}: token service "
        f"'http://{token_port.host}/token' not contacted: it is plain HTTP on {token_port.host}, not on the "
        f"registry's own host {hostile.host}; a token service must be HTTPS on the registry's host or on an "
        "allowed auth host (auth_hosts in the registry config)"
    )
    assert "Secret" not in str(scans) and "10.0.0.7" not in str(scans)  # no remote text reaches viewers


def test_a_policy_that_comes_to_trust_the_registry_queues_the_scan_again(tmp_path, database_url, registry):
    svc = LiveService(tmp_path / "data", database_url).start()
    try:
        image = build_image([tar_layer({"app/late.txt": b"late"})])
        with client_for(registry.host) as pusher:
            push(pusher, f"{registry.host}/late/app:1", image)
        svc.app.state.workers.contents.scanner.client = client_for(registry.host)
        svc.app.state.workers.contents.scanner.isolated = None  # scan in process, with the client set here
        admin = {"Authorization": f"Bearer {svc.admin_token}"}
        put = lambda trusted: httpx.put(f"{svc.url}/api/v1/policy/trust", json={"trusted": trusted}, headers=admin)  # noqa: E731
        assert put(["registry.example.com"]).status_code == 200
        cid, cred = svc.register("prod")
        post(svc, cred, snapshot(cid, [("shop", "late", f"{registry.host}/late/app:1", image.digest)]))
        assert run_scans(svc)["scanned"] == []
        [pod] = svc.list_all("/api/v1/pods", cluster=cid)
        pk = pod["containers"][0]["image_pk"]
        held = svc.get(f"/api/v1/images/{pk}/scan").json()
        assert (held["status"], held["error"]) == (
            "not_scanned",
            f"not scanned: registry {registry.host} is not trusted by the trust policy",
        )
        packages = svc.get(f"/api/v1/images/{pk}/packages")
        assert packages.status_code == 409
        assert packages.json()["detail"] == (
            f"image {pk} is not scanned yet (scan not_scanned): not scanned: registry {registry.host} "
            "is not trusted by the trust policy"
        )
        assert put([f"{registry.host}/late"]).status_code == 200
        assert [s["status"] for s in run_scans(svc)["scanned"]] == ["done"]
        assert svc.get(f"/api/v1/images/{pk}/scan").json()["status"] == "done"
    finally:
        svc.stop()


def test_with_no_trust_policy_no_registry_is_contacted_and_the_image_says_why(tmp_path, database_url, listeners):
    """A fresh service has no policy: what a cluster reports running is its word, so pulling from the
    registries it names would let any cluster credential aim the service at any host."""
    image_port, _ = listeners
    svc = LiveService(tmp_path / "data", database_url).start()
    try:
        client = RegistryClient(
            RegistryConfig.from_mapping({image_port.host: {"plain_http": True}}), retry=FAST_RETRY, timeout=2.0
        )
        workers = svc.app.state.workers
        workers.contents.scanner.client = workers.integrity.client = workers.signatures.client = client
        cid, cred = svc.register("fresh")
        post(svc, cred, snapshot(cid, [("shop", "web", f"{image_port.host}/x/app:1", digest(7))]))
        assert run_scans(svc)["scanned"] == []
        integrity = workers.integrity.run_pass(force=True)
        workers.signatures.run_pass(force=True)
        [pod] = svc.list_all("/api/v1/pods", cluster=cid)
        pk = pod["containers"][0]["image_pk"]
        scan = svc.get(f"/api/v1/images/{pk}/scan").json()
        verdict = svc.get(f"/api/v1/images/{pk}/integrity", token=svc.token("viewer")).json()["integrity"]
    finally:
        svc.stop()
    assert image_port.connections == 0
    assert (scan["status"], scan["error"]) == (
        "not_scanned",
        f"not scanned: no trust policy is set, so the service contacts no registry (this image names "
        f"{image_port.host}); add the registries you trust (vigil trust add, or --trust-file)",
    )
    # The integrity evaluator asks no registry either, and says why the verdict is unknown.
    assert (integrity.evaluated, integrity.requests, dict(integrity.statuses)) == (1, 0, {"unknown": 1})
    assert (verdict["status"], verdict["findings"]) == ("unknown", [])
    assert verdict["evidence"]["reason"] == (
        f"not checked: no trust policy is set, so the service contacts no registry (this image names "
        f"{image_port.host}); add the registries you trust (vigil trust add, or --trust-file)"
    )
