"""The API's reference page at ``/api/docs``: Swagger UI from the package's static files, so it works offline.

Swagger UI is vendored (``static/swagger-ui-*``) like htmx; the page is started by ``static/api-docs.js``
rather than an inline script, so it carries the console's content security policy unchanged.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from vigil.service.ui.security import HEADERS

DOCS_PATH = "/api/docs"

router = APIRouter()

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API</title>
<link rel="icon" type="image/png" href="/static/swagger-ui-favicon.png">
<link rel="stylesheet" href="/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="/static/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""


@router.get(DOCS_PATH, include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    # Public like the schema it renders: the page holds no data, calls made from it carry their own token.
    app = request.app
    html = PAGE.format(title=escape(app.title), openapi_url=escape(app.openapi_url or "/api/openapi.json"))
    response = HTMLResponse(html)
    for name, value in HEADERS:
        response.headers[name.decode()] = value.decode()
    return response
