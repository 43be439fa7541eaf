"""What every console page shares: templates, the signed-in user, rendering, and refusals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData

from vigil.clock import parse_time, utcnow
from vigil.model.findings import RATED_SEVERITIES
from vigil.service.store import sessions
from vigil.service.store.tokens import Principal
from vigil.service.ui import evidence, params
from vigil.service.ui.security import csrf_ok
from vigil.service.ui.session import COOKIE, MAX_AGE_S, Session, SessionCodec

TEMPLATES = Path(__file__).with_name("templates")


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class Refused(Exception):
    """A request the console will not serve: status and a message for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _ago(value: str | datetime | None) -> str:
    if not value:
        return "never"
    s = int((utcnow() - parse_time(value)).total_seconds())
    if s < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _when(value: str | datetime | None) -> str:
    if not value:
        return "—"
    return parse_time(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(digest: str | None, n: int = 12) -> str:
    if not digest:
        return "—"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:n]}" if hexpart else digest[:n]


def _json(value) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def _is_digest(value) -> bool:
    return isinstance(value, str) and (
        value.startswith("sha256:") or (len(value) == 64 and all(c in "0123456789abcdef" for c in value))
    )


def _coverage_note(coverage) -> str:
    """Why a scan's "0 vulnerabilities" is not a clean bill: the ecosystems nothing was checked in."""
    if not coverage:
        return "not matched against the advisory database yet"
    missing = [e["ecosystem"] for e in coverage.get("ecosystems", ()) if not e.get("loaded")]
    return "no advisories loaded for " + ", ".join(missing) + ": their packages were not checked"


def _workload_url(cluster_id: str, namespace: str, kind: str, name: str) -> str:
    return "/workloads/" + "/".join(quote(p, safe="") for p in (cluster_id, namespace, kind, name))


env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(ago=_ago, when=_when, short=_short, json=_json)
env.tests["digest"] = _is_digest
env.globals.update(
    workload_url=_workload_url,
    coverage_note=_coverage_note,
    evidence_rows=evidence.rows,
    SEVERITIES=RATED_SEVERITIES,
    PAGE_SIZES=params.PAGE_SIZES,
)


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: their token's identity and this session."""

    principal: Principal
    session: Session

    @property
    def is_admin(self) -> bool:
        return self.principal.role == "admin"


def codec(request: Request) -> SessionCodec:
    return request.app.state.console_codec


def current_session(request: Request) -> Session | None:
    return codec(request).loads(request.cookies.get(COOKIE))


def viewer(request: Request) -> Viewer:
    """The signed-in user, checked against the session's row and its token on every request, so sign-out,
    revocation and expiry end the session for every copy of the cookie."""
    session = current_session(request)
    if session is None or session.token_id is None or session.session_id is None:  # not signed in
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    with request.app.state.engine.connect() as conn:
        who = sessions.session_user(conn, session.session_id)
    if who is None or who.token_id != session.token_id:
        raise LoginRequired(request.url.path)
    return Viewer(who, session)


async def checked_form(request: Request) -> tuple[FormData, Session | None]:
    """The posted form if it carries this session's CSRF token; otherwise 403."""
    form = await request.form()
    session = current_session(request)
    presented = form.get("csrf")
    if session is None or not csrf_ok(session.csrf, presented if isinstance(presented, str) else None):
        raise Refused(
            403,
            "This form was not sent from this console session (missing or wrong CSRF token). "
            "Reload the page and try again.",
        )
    return form, session


def require_admin(v: Viewer) -> None:
    if not v.is_admin:
        raise Refused(403, f"Signed in as {v.principal.name} with role {v.principal.role}: this needs an admin token.")


def cookie_secure(request: Request) -> bool:
    """Whether browsers may send the session cookie only over HTTPS: the request came over HTTPS, or the
    configured external URL is HTTPS (a TLS-terminating proxy in front of ``--insecure-http``)."""
    external = getattr(request.app.state.settings, "external_url", None)
    return request.url.scheme == "https" or bool(external and external.lower().startswith("https://"))


def set_session_cookie(request: Request, response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        codec(request).dumps(session),
        max_age=MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request),
    )


def delete_session_cookie(request: Request, response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=cookie_secure(request))


def render(request: Request, template: str, v: Viewer | None, status: int = 200, **context) -> HTMLResponse:
    path = request.url.path
    context.setdefault("nav", path.strip("/").split("/")[0] or "overview")
    html = env.get_template(template).render(
        request=request,
        user=v.principal if v else None,
        is_admin=bool(v and v.is_admin),
        csrf=v.session.csrf if v else context.pop("csrf", ""),
        link=lambda **changes: params.link(path, request.query_params, **changes),
        sort_link=lambda name, current, desc: params.sort_link(path, request.query_params, name, current, desc),
        q=request.query_params,
        **context,
    )
    return HTMLResponse(html, status_code=status)


ERROR_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}


def optional_viewer(request: Request) -> Viewer | None:
    """The signed-in user when there is one, for pages any visitor may reach (errors)."""
    try:
        return viewer(request)
    except LoginRequired:
        return None


def error_page(request: Request, status: int, message: str, title: str | None = None) -> HTMLResponse:
    """The console's error page, inside its navigation when someone is signed in."""
    return render(
        request,
        "error.html",
        optional_viewer(request),
        status=status,
        nav="",
        title=title or ERROR_TITLES.get(status, "Refused"),
        message=message,
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None) -> str:
    """Only a local path may follow sign-in; anything else goes to the overview."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url
