"""The web console: server-rendered pages (Jinja2 + htmx) served by the service at ``/``.

``install(app)`` mounts the pages, the static files, the live-update stream, the API's
reference page (``/api/docs``) and the browser security headers onto the service's app.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from vigil.service.ui import api_docs, web
from vigil.service.ui.params import BadParam
from vigil.service.ui.security import SecurityHeadersMiddleware
from vigil.service.ui.session import SessionCodec, load_or_create_key

STATIC = Path(__file__).with_name("static")


def install(app: FastAPI) -> None:
    from vigil.service.ui.pages import ROUTERS

    settings = app.state.settings
    app.state.console_codec = SessionCodec(load_or_create_key(getattr(settings, "data_dir", None)))
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)
    console_endpoints = {getattr(r, "endpoint", None) for router in ROUTERS for r in router.routes}
    app.include_router(api_docs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeadersMiddleware)

    @app.exception_handler(web.LoginRequired)
    async def _login(request: Request, exc: web.LoginRequired):
        if request.headers.get("hx-request"):
            # htmx follows redirects into the swapped fragment; tell it to load the page instead.
            resp = web.HTMLResponse("", status_code=200)
            resp.headers["HX-Redirect"] = "/login"
            return resp
        from urllib.parse import quote

        return web.redirect("/login?next=" + quote(exc.next_url, safe=""))

    @app.exception_handler(web.Refused)
    async def _refused(request: Request, exc: web.Refused):
        return web.error_page(request, exc.status, exc.message)

    @app.exception_handler(BadParam)
    async def _bad_param(request: Request, exc: BadParam):
        return web.error_page(request, 400, str(exc), title="Bad filter")

    api_validation = app.exception_handlers.get(RequestValidationError)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # The API answers JSON; a console page whose path names no row is a page that does not exist.
        if request.scope.get("endpoint") not in console_endpoints:
            if api_validation is None:
                raise exc
            answer = api_validation(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        errors = exc.errors()
        if all(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
            return web.error_page(request, 404, f"There is no page at {request.url.path[:200]}.")
        fields = "; ".join(".".join(map(str, e.get("loc", ()))) + ": " + str(e.get("msg", "invalid")) for e in errors)
        return web.error_page(request, 400, fields[:500], title="Bad request")
