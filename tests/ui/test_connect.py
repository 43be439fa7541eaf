"""Connect a cluster from the console (headless Chromium): an admin gets the Helm command, the token and
the manifest; the cluster is pending until its controller reports; a viewer neither sees nor opens it."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
import yaml

from vigil.devtools.service import LiveService

from .conftest import sign_in


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = LiveService(tmp_path_factory.mktemp("connect") / "data").start()
    yield svc
    svc.stop()


def data_url_text(href: str | None) -> str:
    assert href is not None
    head, _, payload = href.partition(",")
    assert head.endswith(";base64")
    return base64.b64decode(payload).decode()


def test_admin_connects_a_cluster_and_sees_the_helm_command_with_the_token(browser, service, output_dir):
    ctx, page = sign_in(browser, service.url, service.admin_token)
    try:
        page.click("#nav-connect")
        page.wait_for_url(f"{service.url}/connect")
        assert page.input_value("#connect-service-url") == service.url
        page.fill("#connect-name", "prod-eu-1")
        page.fill("#connect-ttl", "2")
        page.fill("#connect-max-uses", "1")
        page.fill("#connect-service-url", "https://vigil.example.com")
        page.click("#connect-form button[type=submit]")
        page.wait_for_selector("#connect-result")
        token = page.inner_text("#connect-token")
        assert re.fullmatch(r"vgl_r_[A-Za-z0-9_-]{43}", token)
        assert page.inner_text("#connect-status") == "pending"
        assert page.inner_text("#helm-command") == (
            "helm upgrade --install vigil deploy/helm/vigil \\\n"
            "    --set central.enabled=false \\\n"
            "    --set securedCluster.clusterName=prod-eu-1 \\\n"
            "    --set securedCluster.serviceUrl=https://vigil.example.com \\\n"
            "    --set-file securedCluster.registrationToken=./vigil-registration-prod-eu-1.token"
        )
        token_link = page.locator("#download-token")
        assert token_link.get_attribute("download") == "vigil-registration-prod-eu-1.token"
        assert data_url_text(token_link.get_attribute("href")) == token
        manifest_link = page.locator("#download-manifest")
        assert manifest_link.get_attribute("download") == "vigil-connect-prod-eu-1.yaml"
        secret = yaml.safe_load(data_url_text(manifest_link.get_attribute("href")))
        assert (secret["kind"], secret["metadata"]["name"], secret["metadata"]["namespace"]) == (
            "Secret",
            "vigil-controller",
            "vigil-system",
        )
        assert secret["stringData"] == {
            "service-url": "https://vigil.example.com",
            "cluster-name": "prod-eu-1",
            "registration-token": token,
        }
        page.screenshot(path=str(output_dir / "connect.png"), full_page=True)

        page.goto(f"{service.url}/clusters")
        row = page.locator("#clusters-table tr[data-cluster=prod-eu-1]")
        assert row.locator("td.cluster-status").inner_text() == "pending"
        cluster_id = row.locator(".mono").inner_text()
        # The token shown registers that very cluster.
        resp = httpx.post(f"{service.url}/api/v1/clusters/register", json={"name": "prod-eu-1"},
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert resp.status_code == 200 and resp.json()["cluster_id"] == cluster_id
        credential = resp.json()["credential"]
        beat = httpx.post(f"{service.url}/api/v1/ingest/heartbeat",
                          json={"cluster_id": cluster_id, "version": "0.1.0", "interval_seconds": 15},
                          headers={"Authorization": f"Bearer {credential}"})  # fmt: skip
        assert beat.status_code < 300
        page.reload()
        assert row.locator("td.cluster-status").inner_text() == "connected"
    finally:
        ctx.close()


def test_a_refused_form_keeps_what_was_typed(browser, service):
    ctx, page = sign_in(browser, service.url, service.admin_token)
    try:
        page.goto(f"{service.url}/connect")
        page.fill("#connect-name", "bad name")
        page.click("#connect-form button[type=submit]")
        page.wait_for_selector("#connect-error")
        assert page.inner_text("#connect-error").startswith("name: 1-253 letters")
        assert page.input_value("#connect-name") == "bad name"
        assert page.locator("#connect-result").count() == 0
    finally:
        ctx.close()


def test_a_viewer_has_no_link_and_cannot_open_or_post_the_page(browser, service):
    ctx, page = sign_in(browser, service.url, service.token("viewer", "test-viewer"))
    try:
        assert page.locator("#nav-connect").count() == 0
        csrf = page.locator("header form input[name=csrf]").get_attribute("value")
        resp = page.goto(f"{service.url}/connect")
        assert resp is not None and resp.status == 403
        assert "this needs an admin token" in page.content()
        posted = page.request.post(f"{service.url}/connect", form={"csrf": csrf, "name": "sneaky"}, max_redirects=0)
        assert posted.status == 403
        names = [c["name"] for c in service.get("/api/v1/clusters").json()["items"]]
        assert "sneaky" not in names
    finally:
        ctx.close()
