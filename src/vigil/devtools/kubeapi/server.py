"""Run the test API server: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import threading
from pathlib import Path

import yaml
from aiohttp import web

from .app import KubeApiApp, ServerSettings
from .store import ApiStore
from .tls import ServingCert, make_serving_cert


class KubeAPIServer:
    """A Kubernetes API server for tests, on loopback, with its store at hand.

    Use as a context manager; ``store`` creates/updates/deletes objects directly,
    ``drop_watches()`` simulates an API server restart, ``compact()`` forgets history.
    """

    def __init__(
        self,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        history_size: int = 1000,
        bookmark_interval: float = 60.0,
        watch_timeout: float = 1800.0,
        store: ApiStore | None = None,
        tls: bool = True,
        service_endpoints: dict[str, str] | None = None,
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.host = host
        self.port = port
        self.store = store or ApiStore(history_size)
        self.settings = ServerSettings(self.token, bookmark_interval, watch_timeout, dict(service_endpoints or {}))
        self.app = KubeApiApp(self.store, self.settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        # Plain HTTP is for loopback only; kubectl needs TLS to send its token at all.
        self.cert: ServingCert | None = make_serving_cert([host, "localhost"]) if tls else None

    @property
    def url(self) -> str:
        return f"{'https' if self.cert else 'http'}://{self.host}:{self.port}"

    async def start_async(self) -> None:
        self._runner = web.AppRunner(self.app.build(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.host,
            self.port,
            reuse_address=True,
            ssl_context=self.cert.server_context() if self.cert else None,
        )
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]

    async def stop_async(self) -> None:
        self.store.drop_watches(abort=False)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> KubeAPIServer:
        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # surfaced to the starting thread
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=run, name="kubeapi", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"the test API server could not start on {self.host}:{self.port}: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> KubeAPIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def map_service(self, namespace: str, name: str, url: str) -> None:
        """Reach admission webhooks whose ``clientConfig.service`` is ``namespace/name`` at ``url``
        (``https://HOST:PORT``); their certificate must still be valid for ``name.namespace.svc``."""
        self.settings.service_endpoints[f"{namespace}/{name}"] = url

    def drop_watches(self, abort: bool = True) -> int:
        return self.store.drop_watches(abort)

    def compact(self) -> int:
        return self.store.compact()

    def kubeconfig(self, namespace: str = "default") -> dict:
        cluster: dict = {"server": self.url}
        if self.cert:
            cluster["certificate-authority-data"] = base64.b64encode(self.cert.ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "vigil-test", "cluster": cluster}],
            "users": [{"name": "vigil-test", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "vigil-test",
                    "context": {"cluster": "vigil-test", "user": "vigil-test", "namespace": namespace},
                }
            ],
            "current-context": "vigil-test",
        }

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(self.kubeconfig(namespace), fh)
        return path
