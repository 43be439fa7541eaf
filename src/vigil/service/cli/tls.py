"""The client certificate of each TLS connection, handed to the app as the ASGI TLS extension.

uvicorn verifies client certificates in the handshake (the SSL context) but does not pass them on, so
the HTTP protocol here reads the verified certificate off the connection when it opens and adds
``scope["extensions"]["tls"]["client_cert_chain"]`` (the ASGI TLS extension's key) to each request on it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uvicorn.protocols.http.h11_impl import H11Protocol as _HTTPProtocol
else:  # the one uvicorn picks for http="auto": httptools when installed, else h11
    from uvicorn.protocols.http.auto import AutoHTTPProtocol as _HTTPProtocol


def _with_client_certificate(app: Any, chain: list[str]):
    tls = {"client_cert_chain": chain, "client_cert_name": None, "client_cert_error": None}

    async def app_on_connection(scope, receive, send):
        if scope.get("type") in ("http", "websocket"):
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": tls}}
        await app(scope, receive, send)

    return app_on_connection


class ClientCertificateProtocol(_HTTPProtocol):
    """uvicorn's HTTP protocol, passing on the connection's verified client certificate."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject) else None
        if der:
            app: Any = self.app
            self.app = _with_client_certificate(app, [ssl.DER_cert_to_PEM_cert(der)])
        super().connection_made(transport)
