"""Policy and settings: trusted registries and alert outputs (when provided), API and registration tokens (admin)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vigil.service.store.tokens import USER_ROLES, issue_token, list_tokens, revoke_token
from vigil.service.ui import sections, web

router = APIRouter()
log = logging.getLogger("vigil.console")
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@:-]{0,127}$")
MAX_TTL_HOURS = 24 * 365


def _page(request: Request, v: web.Viewer, issued=None, error: str | None = None, status: int = 200):
    with request.app.state.engine.connect() as conn:
        tokens = list_tokens(conn, USER_ROLES + ("registration",)) if v.is_admin else []
        trust = sections.policy_section("trust", conn)
        alerts = sections.policy_section("alerts", conn)
    return web.render(
        request,
        "settings.html",
        v,
        status=status,
        user_tokens=[t for t in tokens if t["role"] in USER_ROLES],
        registration_tokens=[t for t in tokens if t["role"] == "registration"],
        trust=trust,
        alerts=alerts,
        issued=issued,
        error=error,
    )


@router.get("/settings")
def settings(request: Request, v: web.Viewer = Depends(web.viewer)):
    return _page(request, v)


@router.post("/settings/tokens")
async def create_token(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    role = str(form.get("role") or "")
    name = str(form.get("name") or "").strip()
    if role not in USER_ROLES + ("registration",):
        return _page(request, v, error=f"role {role!r} is not one of admin, viewer, registration", status=400)
    if not TOKEN_NAME.match(name):
        return _page(request, v, error="name must be 1-128 characters: letters, digits, space and _ . @ : - (starting with a letter or digit)", status=400)
    ttl = max_uses = None
    if role == "registration":
        try:
            hours = int(str(form.get("ttl_hours") or "24"))
            max_uses = int(str(form.get("max_uses"))) if form.get("max_uses") else None
        except ValueError:
            return _page(request, v, error="ttl_hours and max_uses must be whole numbers", status=400)
        if not 1 <= hours <= MAX_TTL_HOURS or (max_uses is not None and max_uses < 1):
            return _page(request, v, error=f"ttl_hours must be 1..{MAX_TTL_HOURS} and max_uses at least 1", status=400)
        ttl = timedelta(hours=hours)

    def work():
        with request.app.state.engine.begin() as conn:
            return issue_token(conn, role=role, name=name, ttl=ttl, max_uses=max_uses)

    tok = await run_in_threadpool(work)
    log.info("token created in console", extra={"token_id": tok.id, "role": role, "by": v.principal.token_id})
    # The secret is shown once, in this response only; it is never put in a URL or a log.
    return _page(request, v, issued=tok, status=201)


@router.post("/settings/tokens/{token_id}/revoke")
async def revoke(token_id: str, request: Request, v: web.Viewer = Depends(web.viewer)):
    await web.checked_form(request)
    web.require_admin(v)

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            return revoke_token(conn, token_id)

    if not await run_in_threadpool(work):
        return _page(request, v, error=f"token {token_id!r} does not exist or is already revoked", status=404)
    log.info("token revoked in console", extra={"token_id": token_id, "by": v.principal.token_id})
    return web.redirect("/settings")
