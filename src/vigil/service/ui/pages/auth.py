"""Sign in with an API token (admin or viewer), sign out."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from vigil.service.store.tokens import USER_ROLES, Principal, TokenRejected, authenticate
from vigil.service.ui import web
from vigil.service.ui.session import COOKIE, new_session

router = APIRouter()
log = logging.getLogger("vigil.console")


@router.get("/login")
def login_page(request: Request, next: str | None = None):
    session = web.current_session(request)
    if session is None or session.signed_in:
        session = new_session()
    resp = web.render(request, "login.html", None, csrf=session.csrf, next=web.safe_next(next), error=None)
    web.set_session_cookie(request, resp, session)
    return resp


@router.post("/login")
async def login(request: Request):
    form, _ = await web.checked_form(request)
    secret = str(form.get("token") or "").strip()
    next_url = web.safe_next(str(form.get("next") or "/"))

    def check() -> Principal:
        with request.app.state.engine.connect() as conn:
            return authenticate(conn, secret)

    error = None
    who: Principal | None = None
    if not secret:
        error = "Enter an API token."
    else:
        try:
            who = await run_in_threadpool(check)
        except TokenRejected as exc:
            error = f"Sign-in refused: {exc}."
        else:
            if who.role not in USER_ROLES:
                error = (
                    f"Sign-in refused: a {who.role} token cannot sign in to the console; use an admin or viewer token."
                )
    if error or who is None:
        log.info("console sign-in refused", extra={"reason": error})
        session = new_session()
        page = web.render(request, "login.html", None, status=401, csrf=session.csrf, next=next_url, error=error)
        web.set_session_cookie(request, page, session)
        return page
    log.info("console sign-in", extra={"token_id": who.token_id, "role": who.role})
    resp = web.redirect(next_url)
    web.set_session_cookie(request, resp, new_session(who.token_id, who.role))
    return resp


@router.post("/logout")
async def logout(request: Request):
    await web.checked_form(request)
    resp = web.redirect("/login")
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp
