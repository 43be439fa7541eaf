"""An HTTP client for one Kubernetes API server (I/O): TLS as the connection says, a bearer token, basic
auth or a client certificate, and raw responses, which the callers read as JSON.

Tokens that change are read again rather than kept: a service account token file when it is a minute old
or the server answered 401, an exec plugin's token when it expires or the server answered 401.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import ssl
import tempfile
import time
from pathlib import Path

import aiohttp

from .config import ExecPlugin, KubeConfigError, KubeConnection

TOKEN_FILE_MAX_AGE = 60.0
EXEC_TIMEOUT = 60.0
MAX_EXEC_OUTPUT = 1 << 20
# An exec token is renewed this long before it says it expires, so that no request carries a dying one.
EXEC_EXPIRY_MARGIN = 10.0


def ssl_context(conn: KubeConnection) -> ssl.SSLContext:
    if conn.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(
            cafile=str(conn.ca_file) if conn.ca_file else None,
            cadata=conn.ca_data.decode("ascii", "replace") if conn.ca_data else None,
        )
    try:
        if conn.client_cert_file and conn.client_key_file:
            ctx.load_cert_chain(str(conn.client_cert_file), str(conn.client_key_file))
        elif conn.client_cert_data and conn.client_key_data:
            # ssl loads a key only from a file: a private one that lives for the call.
            with tempfile.TemporaryDirectory(prefix="vigil-kube-") as tmp:
                cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
                for p, data in ((cert, conn.client_cert_data), (key, conn.client_key_data)):
                    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise KubeConfigError(f"{conn.source}: the client certificate and key cannot be loaded: {exc}") from None
    return ctx


class Credentials:
    """The Authorization header for the next request, renewed as the connection's kind of token needs."""

    def __init__(self, conn: KubeConnection) -> None:
        self.conn = conn
        self._token: str | None = conn.token
        self._read_at = 0.0
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()

    async def header(self, renew: bool = False) -> str | None:
        conn = self.conn
        if conn.exec_plugin is not None:
            async with self._lock:
                stale = self._expires_at is not None and time.time() >= self._expires_at - EXEC_EXPIRY_MARGIN
                if renew or self._token is None or stale:
                    self._token, self._expires_at = await run_exec_plugin(conn.exec_plugin, conn)
            return f"Bearer {self._token}"
        if conn.token_file is not None and (renew or time.monotonic() - self._read_at > TOKEN_FILE_MAX_AGE):
            try:
                self._token = conn.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise KubeConfigError(
                    f"{conn.source}: the token file {conn.token_file} cannot be read: {exc}"
                ) from None
            self._read_at = time.monotonic()
        if self._token:
            return f"Bearer {self._token}"
        if conn.basic_auth is not None:
            user, password = conn.basic_auth
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return None

    @property
    def renewable(self) -> bool:
        return self.conn.exec_plugin is not None or self.conn.token_file is not None


async def run_exec_plugin(plugin: ExecPlugin, conn: KubeConnection) -> tuple[str, float | None]:
    """Run the plugin as kubectl does; returns its token and when it expires (epoch seconds), if it says."""
    spec: dict[str, object] = {"interactive": False}
    if plugin.provide_cluster_info:
        cluster: dict[str, object] = {"server": conn.server, "insecure-skip-tls-verify": conn.insecure}
        if conn.tls_server_name:
            cluster["tls-server-name"] = conn.tls_server_name
        if conn.ca_data:
            cluster["certificate-authority-data"] = base64.b64encode(conn.ca_data).decode()
        spec["cluster"] = cluster
    info = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": spec}
    env = {**os.environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
    what = f"{conn.source}: the exec credential plugin {plugin.command!r}"
    try:
        proc = await asyncio.create_subprocess_exec(
            plugin.command,
            *plugin.args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        hint = f" ({plugin.install_hint.strip()})" if plugin.install_hint.strip() else ""
        raise KubeConfigError(f"{what} cannot be run: {exc}{hint}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), EXEC_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise KubeConfigError(f"{what} gave no answer within {EXEC_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        raise KubeConfigError(f"{what} exited {proc.returncode}: {err.decode(errors='replace').strip()[-300:]}")
    if len(out) > MAX_EXEC_OUTPUT:
        raise KubeConfigError(f"{what} printed {len(out)} bytes, over the {MAX_EXEC_OUTPUT} limit")
    try:
        doc = json.loads(out)
    except ValueError:
        raise KubeConfigError(f"{what} did not print an ExecCredential as JSON") from None
    status = doc.get("status") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential" or not isinstance(status, dict):
        raise KubeConfigError(f"{what} did not print an ExecCredential with a status")
    if doc.get("apiVersion") != plugin.api_version:
        raise KubeConfigError(f"{what} answered apiVersion {doc.get('apiVersion')!r}, not {plugin.api_version!r}")
    token = status.get("token")
    if not isinstance(token, str) or not token:
        if status.get("clientCertificateData"):
            raise KubeConfigError(f"{what} gave a client certificate; only tokens from exec plugins are supported")
        raise KubeConfigError(f"{what} gave no status.token")
    expires = status.get("expirationTimestamp")
    when: float | None = None
    if isinstance(expires, str) and expires:
        try:
            when = dt.datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise KubeConfigError(f"{what} gave an expirationTimestamp that is not RFC 3339: {expires!r}") from None
    return token, when


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, refused past ``limit`` bytes (a proxy or a wrong server must not fill the memory)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise ValueError(f"{resp.method} {resp.url.path}: the answer is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


class KubeClient:
    """Requests to one API server. The session is made on first use, inside the running event loop."""

    def __init__(self, conn: KubeConnection) -> None:
        self.conn = conn
        self.credentials = Credentials(conn)
        self._ssl = ssl_context(conn) if conn.server.startswith("https://") else None
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl or False))
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """The response, unread; the caller releases it. A 401 is retried once with a renewed token."""
        renew = False
        while True:
            headers = {"Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = content_type
            auth = await self.credentials.header(renew)
            if auth:
                headers["Authorization"] = auth
            resp = await self._client().request(
                method,
                self.conn.server + path,
                params=params,
                data=body,
                headers=headers,
                timeout=timeout,
                server_hostname=self.conn.tls_server_name,
            )
            if resp.status == 401 and not renew and self.credentials.renewable:
                resp.release()
                renew = True
                continue
            return resp

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
