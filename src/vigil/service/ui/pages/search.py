"""Search: the top bar's box, one text across images, workloads, pods, packages, advisories and findings."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from vigil.service.store import search as search_store
from vigil.service.ui import params, web

router = APIRouter()
PER_KIND = 20


@router.get("/search")
def search(request: Request, v: web.Viewer = Depends(web.viewer)):
    raw = request.query_params.get("q") or ""
    results = None
    if raw.strip():
        with request.app.state.engine.connect() as conn:
            try:
                results = search_store.search(conn, raw, PER_KIND)
            except search_store.BadQuery as exc:
                raise params.BadParam(str(exc)) from None
    return web.render(request, "search.html", v, results=results, text=raw.strip())
