"""A real service on loopback in a background thread, for tests and benchmarks."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from vigil.devtools.net import free_port, wait_for_port
from vigil.policy.trust import Pattern
from vigil.service.app import create_app
from vigil.service.settings import Settings
from vigil.service.store.clusters import cluster_for_registration
from vigil.service.store.policy import add_trusted
from vigil.service.store.tokens import issue_token


class LiveService:
    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        self.settings = Settings(data_dir=data_dir, database_url=database_url, port=free_port())
        self.app = create_app(self.settings)
        self.engine = self.app.state.engine
        self.url = f"http://127.0.0.1:{self.settings.port}"
        with self.engine.begin() as conn:
            self.admin_token = issue_token(conn, role="admin", name="test-admin").secret
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LiveService:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.settings.port, log_config=None, access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="vigil-live-service", daemon=True)
        self._thread.start()
        wait_for_port(self.settings.port)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        self.engine.dispose()

    def token(self, role: str, name: str = "test") -> str:
        with self.engine.begin() as conn:
            return issue_token(conn, role=role, name=name).secret

    def trust_registry(self, host: str) -> None:
        """Trust ``host`` in the trust policy: with none, the service pulls from no registry."""
        with self.engine.begin() as conn:
            add_trusted(conn, Pattern.parse(host), None, "token:test-admin")

    def registration_token(self) -> str:
        return self.token("registration", "test-registration")

    def register(self, name: str) -> tuple[str, str]:
        """(cluster_id, credential) for a new or existing cluster name: registered with a token bound to
        that name, as an admin issues one (an unbound token creates new clusters only)."""
        with self.engine.begin() as conn:
            token = cluster_for_registration(conn, name, timedelta(hours=1), 1)[1].secret
        resp = httpx.post(
            f"{self.url}/api/v1/clusters/register",
            json={"name": name},
            headers={"Authorization": f"Bearer {token}"},
        )
        resp.raise_for_status()
        body = resp.json()
        return body["cluster_id"], body["credential"]

    def get(self, path: str, token: str | None = None, **params) -> httpx.Response:
        return httpx.get(
            f"{self.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30,
        )

    def list_all(self, path: str, **params) -> list[dict]:
        from vigil.wire.client import ServiceClient

        with ServiceClient(self.url, self.admin_token) as c:
            return c.list_all(path, params)
