"""Sign in with an API token (admin or viewer), sign out."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from vigil.service.store.sessions import end_session, open_session
from vigil.service.store.tokens import USER_ROLES, Principal, TokenRejected, authenticate
from vigil.service.ui import web
from vigil.service.ui.session import MAX_AGE_S, new_session

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
    token_id = who.token_id

    def open_row() -> str:
        with request.app.state.engine.begin() as conn:
            return open_session(conn, token_id, timedelta(seconds=MAX_AGE_S))

    session_id = await run_in_threadpool(open_row)
    log.info("console sign-in", extra={"token_id": who.token_id, "role": who.role})
    resp = web.redirect(next_url)
    web.set_session_cookie(request, resp, new_session(who.token_id, who.role, session_id))
    return resp


@router.post("/logout")
async def logout(request: Request):
    _, session = await web.checked_form(request)
    session_id = session.session_id if session else None
    if session_id is not None:

        def end_row() -> bool:
            with request.app.state.engine.begin() as conn:
                return end_session(conn, session_id)

        if await run_in_threadpool(end_row):
            log.info("console sign-out", extra={"token_id": session.token_id if session else None})
    resp = web.redirect("/login")
    web.delete_session_cookie(request, resp)
    return resp
