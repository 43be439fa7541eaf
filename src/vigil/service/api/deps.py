"""Request dependencies: the store, the background workers, and the caller's verified identity."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine

from vigil.service.api.errors import forbidden, unauthorized
from vigil.service.client_ca import bound_credential
from vigil.service.jobs.alerts.dispatcher import Dispatcher
from vigil.service.jobs.contents import VulnerabilityAnalyzer
from vigil.service.jobs.integrity import IntegrityEvaluator
from vigil.service.jobs.runtime import RuntimeAnalyzer
from vigil.service.jobs.signatures import SignatureVerifier
from vigil.service.jobs.workers import Workers
from vigil.service.store.db import autocommit_connect
from vigil.service.store.tokens import Principal, TokenRejected, authenticate


def engine(request: Request) -> Engine:
    return request.app.state.engine


def workers(request: Request) -> Workers:
    return request.app.state.workers


def integrity_evaluator(w: Workers = Depends(workers)) -> IntegrityEvaluator:
    return w.integrity


def signature_verifier(w: Workers = Depends(workers)) -> SignatureVerifier:
    return w.signatures


def contents_analyzer(w: Workers = Depends(workers)) -> VulnerabilityAnalyzer:
    return w.contents


def runtime_analyzer(w: Workers = Depends(workers)) -> RuntimeAnalyzer:
    return w.runtime


def alert_dispatcher(w: Workers = Depends(workers)) -> Dispatcher:
    return w.alerts


def read_conn(request: Request) -> Iterator[Connection]:
    with request.app.state.engine.connect() as conn:
        yield conn


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise unauthorized("Authorization header must be 'Bearer <token>'")
    return secret.strip()


# The credential kinds that get client certificates, and that `--client-certs required` refuses without
# one: those that write a cluster's inventory and runtime records. People (admin, viewer) keep bearer
# tokens alone, so the console and the CLI work from any browser or shell.
CERTIFIED_KINDS = ("cluster", "sensor")


def presented_certificate(request: Request) -> str | None:
    """The PEM client certificate of the request's TLS connection, which the handshake verified against
    the service's client CA; None when the client presented none (or the service serves no TLS)."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return chain[0] if chain else None


def _identify(request: Request, first_certificate: bool) -> Principal:
    secret = _bearer(request)
    with autocommit_connect(request.app.state.engine) as conn:
        try:
            who = authenticate(conn, secret)
        except TokenRejected as exc:
            raise unauthorized(str(exc)) from None
    mode = request.app.state.settings.client_certs
    if mode != "off":
        cert = presented_certificate(request)
        if cert is not None:
            bound = bound_credential(cert)
            if bound != who.token_id:
                raise unauthorized(
                    f"the client certificate is bound to credential {bound or '(none)'}, not to {who.token_id}: "
                    "send the credential the certificate was issued to"
                )
        elif mode == "required" and who.role in CERTIFIED_KINDS and not first_certificate:
            raise unauthorized(
                f"a {who.role} credential needs a client certificate on this service (--client-certs required); "
                "get one with `vigil credential certificate`"
            )
    request.state.principal = who
    return who


def still_valid(engine: Engine, secret: str) -> bool:
    """Whether a token a long-lived stream was opened with still admits its holder (not revoked or expired)."""
    with autocommit_connect(engine) as conn:
        try:
            authenticate(conn, secret)
        except TokenRejected:
            return False
    return True


def principal(request: Request) -> Principal:
    return _identify(request, first_certificate=False)


def certificate_applicant(request: Request) -> Principal:
    """The caller of the certificate endpoint: with `required`, a credential without a certificate yet
    still gets in, to ask for its first one."""
    return _identify(request, first_certificate=True)


def require(*roles: str):
    """A dependency admitting only tokens whose role is in ``roles``."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if who.role not in roles:
            raise forbidden(f"a {who.role} token cannot do this; it needs a token with role {' or '.join(roles)}")
        return who

    return check


ReaderRoles = ("admin", "viewer")
reader = require(*ReaderRoles)
metrics_reader = require("metrics", *ReaderRoles)
admin = require("admin")
cluster_writer = require("cluster")
# Runtime records and sensor heartbeats: a node's own sensor credential, or (for sensors set up before
# sensors had their own) the cluster's credential.
sensor_writer = require("sensor", "cluster")
enrolment_issuer = require("admin", "cluster")
enroller = require("enrolment")
admission_client = require("admission")


def own_cluster(who: Principal, cluster_id: str) -> None:
    """A cluster-bound credential acts for its own cluster only (an admin for any)."""
    if who.role != "admin" and who.cluster_id != cluster_id:
        raise forbidden(
            f"this credential is scoped to cluster {who.cluster_id}; it cannot act for cluster {cluster_id}"
        )


registrant = require("registration")
