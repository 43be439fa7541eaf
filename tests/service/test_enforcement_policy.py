"""The enforcement policy through the API: admins read and replace it, every replacement is kept as history,
and a bad document is refused with the policy library's own message (SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx
import pytest

from vigil.policy.enforcement import EnforcementPolicy, parse_enforcement
from vigil.service.store.enforcement import enforcement_history, load_enforcement

PATH = "/api/v1/policy/enforcement"
DEFAULT = {
    "exempt_namespaces": ["kube-system", "kube-public", "kube-node-lease"],
    "break_glass_annotation": "vigil.dev/break-glass",
    "policies": [],
}
PROD = {
    "policies": [
        {
            "name": "prod-trusted-only",
            "mode": "enforce",
            "scope": {"namespaces": ["shop"]},
            "rules": {"unscanned": "warn", "vulnerabilities": {"severity": "high", "fixable_only": True}},
        }
    ]
}


@pytest.fixture
def svc(service_on):
    return service_on


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _put(svc, body, token: str | None = None) -> httpx.Response:
    return httpx.put(f"{svc.url}{PATH}", json=body, headers=_h(token or svc.admin_token), timeout=30)


def test_the_default_policy_enforces_nothing_until_one_is_stored(svc):
    got = svc.get(PATH)
    assert got.status_code == 200, got.text
    assert got.json() == {
        **DEFAULT,
        "revision": EnforcementPolicy.model_validate({}).revision,
        "updated_at": None,
        "updated_by": None,
        "warnings": [],
    }
    assert svc.get(f"{PATH}/history").json() == {"items": []}


def test_only_admins_read_and_replace_it(svc):
    viewer = svc.token("viewer", "carol")
    _, cluster = svc.register("prod")
    for token, role in ((viewer, "viewer"), (cluster, "cluster")):
        for resp in (svc.get(PATH, token), svc.get(f"{PATH}/history", token), _put(svc, PROD, token)):
            assert resp.status_code == 403, resp.text
            assert resp.json() == {
                "error": "forbidden",
                "detail": f"a {role} token cannot do this; it needs a token with role admin",
            }
    assert svc.get(PATH).json()["updated_at"] is None  # nothing was stored by the refused PUTs


def test_a_replacement_is_stored_as_a_new_revision_with_its_author(svc):
    alice = svc.token("admin", "alice")
    put = _put(svc, PROD, alice)
    assert put.status_code == 200, put.text
    expected = parse_enforcement(PROD, "test")
    body = put.json()
    assert body["revision"] == expected.revision
    assert body["updated_by"] == "token:alice" and body["updated_at"] is not None
    assert {k: body[k] for k in DEFAULT} == expected.model_dump(mode="json")
    assert body["policies"][0]["rules"]["vulnerabilities"] == {
        "severity": "high",
        "fixable_only": True,
        "ignore_unrated": False,
    }
    assert svc.get(PATH).json() == body
    with svc.engine.connect() as conn:
        stored = load_enforcement(conn)
    assert stored.policy == expected and stored.updated_by == "token:alice"


def test_history_lists_every_revision_newest_first(svc):
    second = {"policies": [{"name": "audit-all", "mode": "audit"}]}
    first_rev = _put(svc, PROD).json()["revision"]
    second_rev = _put(svc, second, svc.token("admin", "bob")).json()["revision"]
    third_rev = _put(svc, PROD).json()["revision"]  # back to the first document: a new row, the same hash
    assert third_rev == first_rev != second_rev
    items = svc.get(f"{PATH}/history").json()["items"]
    assert [(i["revision"], i["updated_by"]) for i in items] == [
        (first_rev, "token:test-admin"),
        (second_rev, "token:bob"),
        (first_rev, "token:test-admin"),
    ]
    assert items[1]["policy"]["policies"][0]["name"] == "audit-all"
    assert items[0]["updated_at"] >= items[1]["updated_at"] >= items[2]["updated_at"]
    assert [i["revision"] for i in svc.get(f"{PATH}/history", limit=1).json()["items"]] == [first_rev]
    with svc.engine.connect() as conn:
        assert [s.updated_by for s in enforcement_history(conn, 2)] == ["token:test-admin", "token:bob"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"policies": [{"name": "Prod", "mode": "enforce"}]},
            "enforcement policy request body: policies[0].name: 'Prod' must be lower-case letters, digits and '-', "
            "at most 63 characters",
        ),
        (
            {"policies": [{"name": "a", "mode": "block"}]},
            "enforcement policy request body: policies[0].mode: Input should be 'enforce', 'warn' or 'audit'",
        ),
        (
            {"policies": [{"name": "a", "rules": {"vulnerabilities": {"severity": "info"}}}]},
            "enforcement policy request body: policies[0].rules.vulnerabilities.severity: "
            "severity must be one of critical, high, medium, low",
        ),
        (
            {"policies": [{"name": "a"}, {"name": "a"}]},
            "enforcement policy request body: policies: policy names must be unique: a appear more than once",
        ),
        ({"exempt": ["x"]}, "enforcement policy request body: exempt: Extra inputs are not permitted"),
    ],
)
def test_a_bad_document_is_refused_naming_the_field(svc, body, detail):
    resp = _put(svc, body)
    assert resp.status_code == 422, resp.text
    assert resp.json() == {"error": "invalid_request", "detail": detail}
    assert svc.get(f"{PATH}/history").json() == {"items": []}


def test_a_body_that_is_no_json_object_is_refused(svc):
    not_json = httpx.put(
        f"{svc.url}{PATH}", content=b"{policies", headers={**_h(svc.admin_token), "content-type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["error"] == "bad_request"
    listed = _put(svc, ["a"])
    assert listed.status_code == 422
    assert listed.json()["errors"] == [{"field": "body", "message": "Input should be an object"}]
