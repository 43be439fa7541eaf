"""The API reference at /api/docs works with no network beyond the service: Swagger UI comes from the package."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from vigil.devtools.service import LiveService
from vigil.service.ui.security import CSP

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = LiveService(tmp_path_factory.mktemp("docs") / "data").start()
    yield svc
    svc.stop()


def test_api_docs_render_offline_from_the_package(browser, service):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    left: list[str] = []

    def only_loopback(route):
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_loopback)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(f"{service.url}/api/docs")
    assert response is not None and response.status == 200
    page.wait_for_load_state("networkidle")
    # Nothing left the host (no CDN, no validator badge), nothing failed ("SwaggerUIBundle is not defined"
    # when the bundle does not load), and the console's policy held.
    assert left == []
    assert errors == []
    assert response.headers["content-security-policy"] == CSP
    # Rendered from the schema: operations with their summaries, grouped by tag.
    clusters = page.locator(".opblock-summary", has_text="Clusters with controller status and counts")
    clusters.first.wait_for(timeout=15_000)
    assert clusters.first.is_visible()
    assert page.locator(".opblock").count() > 20
    assert page.locator(".info .title").inner_text().startswith("Vigil Runtime Service")
    assert errors == []
    ctx.close()


def test_api_docs_page_is_public_and_names_only_packaged_assets(service):
    r = httpx.get(f"{service.url}/api/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "cdn" not in r.text.lower() and "<script>" not in r.text
    for asset in ("/static/swagger-ui-bundle.js", "/static/swagger-ui.css", "/static/api-docs.js"):
        assert f'"{asset}"' in r.text
        served = httpx.get(service.url + asset)
        assert served.status_code == 200, asset
    assert httpx.get(f"{service.url}/api/openapi.json").json()["info"]["title"] == "Vigil Runtime Service"
