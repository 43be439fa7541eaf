"""The Runtime Service's ASGI application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import Engine

from vigil import __version__
from vigil.service.api import clusters, errors, findings, health, ingest, inventory, tokens
from vigil.service.api import integrity as integrity_api
from vigil.service.api import policy as policy_api
from vigil.service.http import AccessLogMiddleware, RequestBodyMiddleware
from vigil.service.metrics import Metrics
from vigil.service.settings import Settings
from vigil.service.store.db import create_store_engine, migrate

DESCRIPTION = """Vigil checks what runs in Kubernetes against the artifact registry it should come from.

Every endpoint except `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer <token>`:
user tokens (roles `admin`, `viewer`), cluster credentials (write their own cluster's inventory),
registration tokens (register a cluster). Errors are `{"error": code, "detail": why}`.
"""


def create_app(settings: Settings, engine: Engine | None = None, run_migrations: bool = True) -> FastAPI:
    engine = engine or create_store_engine(settings.database_url)
    if run_migrations:
        migrate(engine)
    app = FastAPI(
        title="Vigil Runtime Service",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.metrics = Metrics()
    errors.install(app)
    errors.install_store_errors(app)
    for module in (health, tokens, clusters, ingest, inventory, findings):
        app.include_router(module.router)
    for module in (policy_api, integrity_api):
        app.include_router(module.router)
    # Registry trust and image integrity: policy file at start, evaluator (background if configured).
    from vigil.service.analysis import lifecycle as integrity_lifecycle

    integrity_lifecycle.install(app, settings, engine)
    # Alerts: outputs and dead letters API, the outbox dispatcher (background if configured).
    from vigil.service.alerts import lifecycle as alerts_lifecycle
    from vigil.service.api import alerts as alerts_api

    app.include_router(alerts_api.router)
    alerts_lifecycle.install(app, settings, engine)
    # Image contents and vulnerabilities: contents API, the scanner and the matcher (background if configured).
    from vigil.service.analysis import vulnerabilities as contents_lifecycle
    from vigil.service.api import contents as contents_api

    app.include_router(contents_api.router)
    contents_lifecycle.install(app, settings, engine)
    # Runtime analysis: rules and allow-list API, the analyzer woken by runtime ingest.
    from vigil.service.analysis.runtime import lifecycle as runtime_lifecycle
    from vigil.service.analysis.runtime import routes as runtime_routes

    app.include_router(runtime_routes.router)
    runtime_lifecycle.install(app, settings, engine)
    from vigil.service.ui import install as install_console

    install_console(app)  # the web console at /
    app.add_middleware(RequestBodyMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLogMiddleware, metrics=app.state.metrics)

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path in schema.get("paths", {}).values():
            for op in path.values():
                components.update(op.pop("x-vigil-defs", {}) or {})
        schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
