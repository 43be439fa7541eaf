"""Client certificates for mutual TLS: a cluster or sensor credential has the service's CA sign one."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vigil.clock import iso
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import CERTIFIED_KINDS, certificate_applicant, presented_certificate
from vigil.service.api.errors import ApiError, bad_request, forbidden
from vigil.service.api.responses import ViewRoute, error_response
from vigil.service.client_ca import ClientCA, CsrRejected
from vigil.service.store.client_certificates import issued_count, lock_credential, record_certificate
from vigil.service.store.tokens import Principal
from vigil.wire.client_certificate import ClientCertificateRequest, IssuedClientCertificate

router = APIRouter(prefix="/api/v1", tags=["client certificates"], route_class=ViewRoute)


@router.post(
    "/client-certificate",
    status_code=201,
    response_model=IssuedClientCertificate,
    summary="Have the service's CA sign a client certificate bound to this credential",
    description=(
        "For a cluster or sensor credential, with `--client-certs optional` or `required`. The body holds a CSR "
        "for a key the client made; the certificate names the calling credential and nothing the CSR asks for. "
        "A credential's first certificate needs only its secret; later ones (renewals) need the connection to "
        "present a current certificate of the same credential."
    ),
    openapi_extra=openapi_body(ClientCertificateRequest),
    responses={409: error_response("The service issues no client certificates (`--client-certs off`)")},
)
async def issue_client_certificate(request: Request, who: Principal = Depends(certificate_applicant)) -> dict:
    ca: ClientCA | None = getattr(request.app.state, "client_ca", None)
    if ca is None:
        raise ApiError(
            409, "client_certificates_off", "this service issues no client certificates (--client-certs is off)"
        )
    if who.role not in CERTIFIED_KINDS:
        raise forbidden(f"{who.role} tokens get no client certificate; only cluster and sensor credentials do")
    body: ClientCertificateRequest = await parse_body(request, ClientCertificateRequest)
    renewing = presented_certificate(request) is not None  # deps checked it is bound to ``who``
    lifetime = timedelta(days=request.app.state.settings.client_cert_days)

    def work():
        with request.app.state.engine.begin() as conn:
            lock_credential(conn, who.token_id)
            if not renewing and issued_count(conn, who.token_id):
                raise forbidden(
                    f"credential {who.token_id} already has a client certificate: renew it over a connection "
                    "that presents it, or rotate the credential to start again"
                )
            try:
                issued = ca.issue(body.csr, who.token_id, lifetime)
            except CsrRejected as exc:
                raise bad_request(str(exc)) from None
            record_certificate(conn, who.token_id, issued.fingerprint_sha256, issued.serial, issued.not_after)
            return issued

    issued = await run_in_threadpool(work)
    return {
        "credential_id": who.token_id,
        "certificate": issued.pem,
        "ca": ca.cert_pem,
        "serial": issued.serial,
        "fingerprint_sha256": issued.fingerprint_sha256,
        "not_after": iso(issued.not_after),
    }
