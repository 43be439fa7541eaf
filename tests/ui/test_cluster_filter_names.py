"""The console's list filters take a cluster by name as by id (a shared or typed URL names it; the filter's
select sends the id), and a cluster nobody registered is the 400 page naming it, never an empty list
(HTTP against the seeded service: clusters "prod" and "staging")."""

from __future__ import annotations

import html
import re

import httpx
import pytest

LISTS = ("/findings", "/images", "/workloads", "/processes")


@pytest.fixture(scope="module")
def client(console):
    svc, _ = console
    with httpx.Client(base_url=svc.url, timeout=60) as c:
        login = c.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf
        resp = c.post("/login", data={"token": svc.admin_token, "csrf": csrf.group(1), "next": "/"})
        assert resp.status_code == 303
        yield c


def _rows(page: httpx.Response) -> int:
    assert page.status_code == 200, page.text[:500]
    # A list with no rows has no table body.
    body = page.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page.text else ""
    return body.count("<tr")


@pytest.mark.parametrize("path", LISTS)
def test_a_list_filtered_by_cluster_name_is_the_list_filtered_by_its_id(console, client, path):
    _, world = console
    counts = {}
    for name, cluster_id in (("prod", world.prod), ("staging", world.staging)):
        by_id = client.get(path, params={"cluster": cluster_id, "status": "any"})
        by_name = client.get(path, params={"cluster": name, "status": "any"})
        counts[name] = _rows(by_name)
        assert counts[name] == _rows(by_id), name
        # The filter's select shows the cluster chosen.
        assert f'<option value="{cluster_id}" selected>{name}</option>' in by_name.text
        export_by_id = client.get(f"{path}.csv", params={"cluster": cluster_id, "status": "any"})
        export_by_name = client.get(f"{path}.csv", params={"cluster": name, "status": "any"})
        assert export_by_name.status_code == 200 and export_by_name.text == export_by_id.text, name
    # The filter filters: prod runs something of every list, staging less than both clusters together (an image
    # may run in both; the seed runs processes in prod only).
    assert counts["prod"] > 0 and counts["staging"] < _rows(client.get(path, params={"status": "any"}))


@pytest.mark.parametrize("path", LISTS + tuple(f"{p}.csv" for p in LISTS))
def test_an_unknown_cluster_is_the_bad_filter_page_naming_it(client, path):
    resp = client.get(path, params={"cluster": "nosuch"})
    assert resp.status_code == 400
    message = re.search(r'id="error-message"[^>]*>(.*?)</p>', resp.text, re.S)
    assert message, resp.text[:500]
    assert (
        html.unescape(message.group(1)).strip() == "cluster: cluster 'nosuch' is not registered (known: prod, staging)"
    )
