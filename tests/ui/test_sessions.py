"""Console sessions live in the store: sign-out, token revocation and expiry end them for every copy
of the cookie, and the cookie is Secure whenever the external URL people use is HTTPS."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update

from vigil.clock import utcnow
from vigil.devtools.service import LiveService
from vigil.service.store.schema import api_tokens, console_sessions
from vigil.service.store.tokens import authenticate

COOKIE = "vigil_session"


def _cookie(value: str) -> dict[str, str]:
    # Sent by hand on every request, so a test replays exactly the cookie it kept and nothing the client stored.
    return {"Cookie": f"{COOKIE}={value}"}


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def _sign_in(client: httpx.Client, token: str) -> tuple[str, str]:
    """(session cookie, CSRF secret) of a fresh console sign-in with ``token``."""
    page = client.get("/login")
    resp = client.post(
        "/login",
        data={"token": token, "csrf": _csrf(page.text), "next": "/"},
        headers=_cookie(page.cookies[COOKIE]),
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/"
    cookie = resp.cookies[COOKIE]
    home = client.get("/", headers=_cookie(cookie))
    assert home.status_code == 200
    return cookie, _csrf(home.text)


def _count(svc: LiveService, table, *where) -> int:
    with svc.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_a_cookie_kept_after_sign_out_loads_nothing_and_creates_no_token(service_on: LiveService):
    svc = service_on
    with httpx.Client(base_url=svc.url, follow_redirects=False) as client:
        cookie, csrf = _sign_in(client, svc.admin_token)
        assert _count(svc, console_sessions) == 1
        out = client.post("/logout", data={"csrf": csrf}, headers=_cookie(cookie))
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert _count(svc, console_sessions) == 0

        page = client.get("/findings", headers=_cookie(cookie))
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Ffindings"
        tokens_before = _count(svc, api_tokens)
        made = client.post(
            "/settings/tokens", data={"csrf": csrf, "name": "replayed", "role": "admin"}, headers=_cookie(cookie)
        )
        assert made.status_code == 303 and made.headers["location"].startswith("/login")
        assert _count(svc, api_tokens) == tokens_before
        assert _count(svc, api_tokens, api_tokens.c.name == "replayed") == 0
        assert client.get("/ui/events", headers=_cookie(cookie)).status_code == 401


def test_revoking_the_token_ends_its_sessions(service_on: LiveService):
    svc = service_on
    secret = svc.token("viewer", "auditor")
    with svc.engine.connect() as conn:
        token_id = authenticate(conn, secret).token_id
    with httpx.Client(base_url=svc.url, follow_redirects=False) as client:
        cookie, _ = _sign_in(client, secret)
        other, _ = _sign_in(client, secret)
        assert _count(svc, console_sessions, console_sessions.c.token_id == token_id) == 2
        resp = client.delete(f"/api/v1/tokens/{token_id}", headers={"Authorization": f"Bearer {svc.admin_token}"})
        assert resp.status_code == 204
        assert _count(svc, console_sessions, console_sessions.c.token_id == token_id) == 0
        for kept in (cookie, other):
            page = client.get("/", headers=_cookie(kept))
            assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F"


def test_an_expired_session_row_refuses_the_cookie_it_was_signed_into(service_on: LiveService):
    svc = service_on
    with httpx.Client(base_url=svc.url, follow_redirects=False) as client:
        cookie, _ = _sign_in(client, svc.admin_token)
        with svc.engine.begin() as conn:
            conn.execute(update(console_sessions).values(expires_at=utcnow() - timedelta(seconds=1)))
        page = client.get("/", headers=_cookie(cookie))
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F"


def _session_cookie_header(resp: httpx.Response) -> str:
    return next(v for v in resp.headers.get_list("set-cookie") if v.startswith(COOKIE + "="))


def test_cookie_is_secure_when_the_external_url_is_https_behind_plain_http(tmp_path):
    svc = LiveService(tmp_path / "data")
    svc.settings.external_url = "https://vigil.example.com"
    svc.start()
    try:
        with httpx.Client(base_url=svc.url, follow_redirects=False) as client:
            page = client.get("/login")
            assert "secure" in _session_cookie_header(page).lower().split("; ")
            resp = client.post(
                "/login",
                data={"token": svc.admin_token, "csrf": _csrf(page.text), "next": "/"},
                headers=_cookie(page.cookies[COOKIE]),
            )
            assert resp.status_code == 303
            assert "secure" in _session_cookie_header(resp).lower().split("; ")
    finally:
        svc.stop()


def test_cookie_is_not_secure_on_plain_http_without_an_https_external_url(live_service: LiveService):
    with httpx.Client(base_url=live_service.url, follow_redirects=False) as client:
        assert "secure" not in _session_cookie_header(client.get("/login")).lower().split("; ")
