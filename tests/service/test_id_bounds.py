"""Every integer in a path or query is bounded, so an id beyond the store's range is a 422 naming it, not a 500."""

from __future__ import annotations

import re

import httpx

from vigil.service.store.ids import MAX_ROW_ID


def _integer_parameters(doc: dict) -> list[tuple[str, str, dict]]:
    """(method, path, parameter) for every integer path or query parameter in the OpenAPI document."""
    out = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                schema = param["schema"]
                variants = [schema, *schema.get("anyOf", [])]
                number = next((v for v in variants if v.get("type") == "integer"), None)
                if number is not None and param["in"] in ("path", "query"):
                    out.append((method, path, {**param, "schema": number}))
    return out


def test_every_integer_parameter_has_a_maximum(live_service):
    doc = httpx.get(f"{live_service.url}/api/openapi.json").json()
    params = _integer_parameters(doc)
    assert len(params) >= 25  # ids of findings, images, outputs, allow entries, events; page sizes
    unbounded = [f"{m.upper()} {p} {q['in']}.{q['name']}" for m, p, q in params if "maximum" not in q["schema"]]
    assert unbounded == []
    ids = {(p, q["name"]): q["schema"]["maximum"] for _, p, q in params if q["name"] != "limit"}
    assert set(ids.values()) == {MAX_ROW_ID}, ids


def test_an_id_of_two_to_the_63_is_a_422_naming_the_parameter(service_on):
    """One past each parameter's maximum, on every operation: the answer names the parameter and the bound."""
    svc = service_on
    doc = httpx.get(f"{svc.url}/api/openapi.json").json()
    checked = 0
    for method, path, param in _integer_parameters(doc):
        too_big = param["schema"]["maximum"] + 1
        url, query = path, {}
        if param["in"] == "path":
            url = path.replace("{" + param["name"] + "}", str(too_big))
        else:
            query[param["name"]] = str(too_big)
        url = url.replace("{image_id}", "1")
        resp = httpx.request(
            method.upper(),
            f"{svc.url}{url}",
            params=query,
            headers={"Authorization": f"Bearer {svc.admin_token}"},
            timeout=30,
        )
        where = f"{method.upper()} {url} {param['in']}.{param['name']}"
        assert resp.status_code == 422, (where, resp.status_code, resp.text)
        field = f"{param['in']}.{param['name']}"
        bound = f"Input should be less than or equal to {param['schema']['maximum']}"
        assert {"field": field, "message": bound} in resp.json()["errors"], (where, resp.text)
        checked += 1
    assert checked >= 25


def test_a_last_event_id_beyond_the_range_is_a_422(live_service):
    resp = httpx.get(
        f"{live_service.url}/api/v1/findings/stream",
        headers={"Authorization": f"Bearer {live_service.admin_token}", "Last-Event-ID": str(2**63)},
        timeout=30,
    )
    assert resp.status_code == 422
    assert resp.json()["detail"] == (
        f"Last-Event-ID '{2**63}' is not an event id this stream sent (an integer from 0 to {2**63 - 1})"
    )


def test_console_pages_refuse_an_id_beyond_the_range(service_on):
    """The console's id pages are bounded once signed in (where the store would be asked): an id no row
    can have names nothing, so it is the console's 404 page, never a 500."""
    svc = service_on
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        page = client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        signed_in = client.post("/login", data={"token": svc.admin_token, "csrf": csrf.group(1), "next": "/"})
        assert signed_in.status_code == 303
        for path in (f"/findings/{2**63}", f"/images/{2**63}"):
            resp = client.get(path)
            assert resp.status_code == 404, (path, resp.status_code, resp.text[:300])
            assert "<title>Not found · Vigil</title>" in resp.text
        assert client.get("/findings/1").status_code == 404
