"""The console's search: the top bar's box on every page, results grouped by kind, each a link to its page."""

from __future__ import annotations

import re

import httpx

from .test_sessions import _cookie, _sign_in


def test_typing_an_image_in_the_top_bar_lands_on_its_page(console, viewer_page):
    svc, world = console
    page = viewer_page
    page.goto(f"{svc.url}/workloads")
    page.fill("#search-box", "team1/app1")
    page.press("#search-box", "Enter")
    page.wait_for_url(re.compile(re.escape(f"{svc.url}/search?q=team1%2Fapp1")))
    images = page.locator("#search-images")
    assert images.locator("h2").inner_text() == "Images 1"
    images.locator("a").first.click()
    pk = world.image_pk["registry.example.com/team1/app1:1.1"]
    page.wait_for_url(f"{svc.url}/images/{pk}")
    assert "team1/app1" in page.locator("h1").inner_text()


def test_a_workload_found_from_the_box_opens_the_workload(console, viewer_page):
    svc, world = console
    page = viewer_page
    page.goto(f"{svc.url}/findings")
    page.fill("#search-box", "statefulset-1")
    page.press("#search-box", "Enter")
    page.wait_for_url(re.compile(r".*/search\?q=statefulset-1$"))
    workloads = page.locator("#search-workloads tbody tr")
    assert workloads.count() == 1
    assert workloads.first.locator("td").all_inner_texts() == ["statefulset-1", "StatefulSet", "ns-1", "prod"]
    # Its pods are listed too, each a link to the workload's page.
    pods = page.locator("#search-pods tbody tr td:first-child").all_inner_texts()
    assert pods == sorted(p.name for p in world.snapshot.pods if p.workload.name == "statefulset-1")
    workloads.first.locator("a").click()
    page.wait_for_url(f"{svc.url}/workloads/{world.prod}/ns-1/StatefulSet/statefulset-1")
    # The box is on this page too, empty.
    assert page.locator("#search-box").input_value() == ""


def _signed_in_get(svc, path: str, **params) -> httpx.Response:
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        cookie, _ = _sign_in(client, svc.token("viewer", "search-viewer"))
        return client.get(path, params=params, headers=_cookie(cookie))


def test_search_page_lists_the_first_matches_of_a_kind_and_counts_the_rest(console):
    svc, _ = console
    page = _signed_in_get(svc, "/search", q="libfill")
    assert page.status_code == 200
    # The image's 50 filler packages: the first 20 by name, then how many more.
    listed = re.findall(r">(libfill\d\d) 1\.0</a>", page.text)
    assert listed == [f"libfill{i:02d}" for i in range(20)]
    assert '<p class="more">30 more packages match; narrow the text to see them.</p>' in page.text
    assert 'id="search-images"' not in page.text


def test_search_page_refuses_text_longer_than_its_limit(console):
    svc, _ = console
    page = _signed_in_get(svc, "/search", q="x" * 201)
    assert page.status_code == 400
    assert "q: at most 200 characters (this one has 201)" in page.text


def test_search_page_says_when_nothing_matches(console):
    svc, _ = console
    page = _signed_in_get(svc, "/search", q="100%_nothing")
    assert page.status_code == 200
    assert '<p class="empty" id="search-empty">Nothing matches 100%_nothing.</p>' in page.text


def test_search_needs_a_signed_in_user(console):
    svc, _ = console
    r = httpx.get(f"{svc.url}/search", params={"q": "app"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fsearch%3Fq%3Dapp"
