"""Connect a cluster (admins only): make the cluster, pending until its controller reports, and a
registration token bound to it; show the token once with the `helm upgrade --install` command that
reads it from a file, and offer the token file and a manifest (the token in a Secret) as downloads.

The same plan as `vigil cluster install` (``service/analysis/install.py``). The token is never put in
a URL or a log; the downloads are data URLs inside this one response.
"""

from __future__ import annotations

import base64
import logging
import re
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vigil.service.analysis.install import connect_plan, token_file_name
from vigil.service.store.clusters import CLUSTER_NAME, cluster_for_registration
from vigil.service.ui import web

router = APIRouter()
log = logging.getLogger("vigil.console")
MAX_TTL_HOURS = 24 * 30  # as the registration-token API allows
_NAME = re.compile(CLUSTER_NAME)


def _data_url(text: str, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(text.encode()).decode()}"


def _default_service_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _page(request: Request, v: web.Viewer, status: int = 200, error: str | None = None, form=None, **shown):
    fields = {k: str((form or {}).get(k) or "") for k in ("name", "ttl_hours", "max_uses", "service_url")}
    fields["ttl_hours"] = fields["ttl_hours"] or "24"
    fields["service_url"] = fields["service_url"] or _default_service_url(request)
    shown.setdefault("issued", None)
    return web.render(request, "connect.html", v, status=status, nav="connect", error=error, form=fields, **shown)


@router.get("/connect")
def connect(request: Request, v: web.Viewer = Depends(web.viewer)):
    web.require_admin(v)
    return _page(request, v)


def _checked(form) -> tuple[str, int, int | None, str]:
    """The form's name, ttl hours, max uses and service URL; ValueError names what is wrong."""
    name = str(form.get("name") or "").strip()
    if not _NAME.match(name):
        raise ValueError("name: 1-253 letters, digits and . _ - (starting with a letter or digit)")
    try:
        hours = int(str(form.get("ttl_hours") or "24"))
        max_uses = int(str(form.get("max_uses"))) if form.get("max_uses") else None
    except ValueError:
        raise ValueError("valid for hours and max uses must be whole numbers") from None
    if not 1 <= hours <= MAX_TTL_HOURS or (max_uses is not None and max_uses < 1):
        raise ValueError(f"valid for hours must be 1..{MAX_TTL_HOURS} and max uses at least 1")
    url = str(form.get("service_url") or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("service URL: the address the cluster reaches this service at, http(s)://host[:port]")
    return name, hours, max_uses, url


@router.post("/connect")
async def create(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    try:
        name, hours, max_uses, service_url = _checked(form)
    except ValueError as exc:
        return _page(request, v, status=400, error=str(exc), form=form)

    def work():
        with request.app.state.engine.begin() as conn:
            return cluster_for_registration(conn, name, timedelta(hours=hours), max_uses)

    cluster_id, token = await run_in_threadpool(work)
    log.info("cluster connect token created in console",
             extra={"cluster_id": cluster_id, "token_id": token.id, "by": v.principal.token_id})  # fmt: skip
    plan = connect_plan(name, service_url, token.secret)
    return _page(
        request,
        v,
        status=201,
        form=form,
        issued=token,
        cluster_id=cluster_id,
        plan=plan,
        token_download=_data_url(token.secret, "text/plain"),
        token_download_name=token_file_name(name),
        manifest_download=_data_url(plan.manifest, "application/yaml"),
    )
