"""The Runtime Service's ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from vigil import __version__
from vigil.service.api import (
    admission,
    alerts,
    client_certificates,
    clusters,
    contents,
    enforcement,
    errors,
    findings,
    funnel,
    health,
    ingest,
    integrity,
    inventory,
    policy,
    prevention,
    runtime,
    search,
    signatures,
    tokens,
)
from vigil.service.api.responses import declare_errors, merge_defs
from vigil.service.client_ca import ClientCA
from vigil.service.http import AccessLogMiddleware, BodyLimits, RequestBodyMiddleware
from vigil.service.jobs import workers as background
from vigil.service.metrics import Metrics
from vigil.service.settings import Settings
from vigil.service.store.db import create_store_engine, migrate
from vigil.service.ui import install as install_console

ROUTERS = (
    health,
    tokens,
    clusters,
    client_certificates,
    ingest,
    inventory,
    findings,
    policy,
    enforcement,
    prevention,
    admission,
    integrity,
    signatures,
    alerts,
    contents,
    funnel,
    runtime,
    search,
)

DESCRIPTION = """Vigil checks what runs in Kubernetes against the artifact registry it should come from.

Every endpoint except `/healthz` and `/readyz` needs `Authorization: Bearer <token>`:
user tokens (roles `admin`, `viewer`), metrics tokens (read `/metrics` only), cluster credentials
(write their own cluster's inventory), registration tokens (register a cluster), admission credentials
(read their own cluster's admission feed, record its webhooks' decisions).
Errors are `{"error": code, "detail": why}`.
"""


def create_app(settings: Settings, engine: Engine | None = None, run_migrations: bool = True) -> FastAPI:
    engine = engine or create_store_engine(settings.store_url)
    if run_migrations:
        migrate(engine)
    workers = background.build_workers(settings, engine)

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        # Read at start, not at build: a test or embedder may have replaced a worker in between.
        running: background.Workers = a.state.workers
        background.start(running, settings)
        try:
            yield
        finally:
            await run_in_threadpool(background.stop, running)

    app = FastAPI(
        lifespan=lifespan,
        title="Vigil Runtime Service",
        version=__version__,
        description=DESCRIPTION,
        # /api/docs is the console's page (vigil.service.ui.api_docs): Swagger UI from the package, not a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.workers = workers
    app.state.admission_changes = admission.PolicyChanges()  # wakes admission feeds when a policy is replaced
    # The CA that signs controllers' and sensors' client certificates, kept in the data dir across starts.
    app.state.client_ca = ClientCA.load_or_create(settings.data_dir) if settings.client_certs != "off" else None
    errors.install(app)
    errors.install_store_errors(app)
    for module in ROUTERS:
        app.include_router(module.router)
    install_console(app)  # the web console at /
    limits = BodyLimits(
        ingest_bytes=settings.max_body_bytes,
        other_bytes=settings.max_other_body_bytes,
        preauth_bytes=settings.max_preauth_body_bytes,
        large_bodies=settings.max_large_bodies,
    )
    app.add_middleware(RequestBodyMiddleware, limits=limits)
    app.add_middleware(AccessLogMiddleware, metrics=app.state.metrics)

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        merge_defs(schema)
        schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
        declare_errors(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
