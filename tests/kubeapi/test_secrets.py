"""Secrets on the test API server behave as on kube-apiserver: base64 data, stringData, type, conflicts."""

from __future__ import annotations

import base64

from tests.kubeapi.test_kubeapi import api, client  # noqa: F401  (the fixture)

PATH = "/api/v1/namespaces/default/secrets"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_create_get_with_string_data_folded_into_data(api):  # noqa: F811
    c = client(api)
    r = c.post(
        PATH,
        json={
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "cred"},
            "data": {"a": b64("one")},
            "stringData": {"b": "two", "a": "wins"},
        },
    )
    assert r.status_code == 201
    created = r.json()
    assert created["data"] == {"a": b64("wins"), "b": b64("two")}
    assert "stringData" not in created
    assert created["type"] == "Opaque"
    assert "generation" not in created["metadata"]
    got = c.get(f"{PATH}/cred").json()
    assert got == created
    assert c.get(PATH, params={"fieldSelector": "type=Opaque"}).json()["items"][0]["metadata"]["name"] == "cred"
    assert c.get(PATH, params={"fieldSelector": "type=kubernetes.io/tls"}).json()["items"] == []


def test_invalid_base64_and_keys_are_refused_as_the_api_server_does(api):  # noqa: F811
    c = client(api)
    r = c.post(PATH, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "data": {"k": "abc!"}})
    assert r.status_code == 400
    assert r.json()["reason"] == "BadRequest"
    assert r.json()["message"] == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3'
    )
    r = c.post(
        PATH, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "stringData": {"no spaces": "x"}}
    )
    assert r.status_code == 422
    assert r.json()["message"].startswith('Secret "bad" is invalid: data[no spaces]: Invalid value: "no spaces"')
    assert c.get(f"{PATH}/bad").status_code == 404


def test_update_with_a_stale_resource_version_is_a_conflict(api):  # noqa: F811
    c = client(api)
    first = c.post(PATH, json={"metadata": {"name": "cred"}, "stringData": {"k": "v1"}}).json()
    rv = first["metadata"]["resourceVersion"]
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cred", "resourceVersion": rv},
        "data": {"k": b64("v2")},
    }
    second = c.put(f"{PATH}/cred", json=body)
    assert second.status_code == 200
    assert second.json()["data"] == {"k": b64("v2")}
    assert int(second.json()["metadata"]["resourceVersion"]) > int(rv)
    stale = c.put(f"{PATH}/cred", json={**body, "data": {"k": b64("v3")}})
    assert stale.status_code == 409
    assert stale.json()["reason"] == "Conflict"
    assert stale.json()["message"] == (
        'Operation cannot be fulfilled on secrets "cred": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    again = c.post(PATH, json={"metadata": {"name": "cred"}})
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
    assert c.get(f"{PATH}/cred").json()["data"] == {"k": b64("v2")}


def test_patch_merges_data_and_checks_the_resource_version(api):  # noqa: F811
    c = client(api)
    created = c.post(PATH, json={"metadata": {"name": "cred"}, "stringData": {"a": "1"}}).json()
    rv = created["metadata"]["resourceVersion"]
    merge = {"Content-Type": "application/merge-patch+json"}
    r = c.patch(f"{PATH}/cred", content=b'{"stringData": {"b": "2"}}', headers=merge)
    assert r.status_code == 200
    assert r.json()["data"] == {"a": b64("1"), "b": b64("2")}
    stale_body = f'{{"metadata": {{"resourceVersion": "{rv}"}}, "data": {{"a": null}}}}'
    stale = c.patch(f"{PATH}/cred", content=stale_body.encode(), headers=merge)
    assert stale.status_code == 409
    assert c.get(f"{PATH}/cred").json()["data"] == {"a": b64("1"), "b": b64("2")}


def test_type_and_immutable_data_cannot_change(api):  # noqa: F811
    c = client(api)
    c.post(PATH, json={"metadata": {"name": "frozen"}, "immutable": True, "stringData": {"k": "v"}})
    merge = {"Content-Type": "application/merge-patch+json"}
    r = c.patch(f"{PATH}/frozen", content=b'{"stringData": {"k": "other"}}', headers=merge)
    assert r.status_code == 422
    immutable = 'Secret "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    assert r.json()["message"] == immutable
    r = c.patch(f"{PATH}/frozen", content=b'{"type": "kubernetes.io/tls"}', headers=merge)
    assert r.status_code == 422
    type_fixed = 'Secret "frozen" is invalid: type: Invalid value: "kubernetes.io/tls": field is immutable'
    assert r.json()["message"] == type_fixed
    ok = c.patch(f"{PATH}/frozen", content=b'{"metadata": {"labels": {"a": "b"}}}', headers=merge)
    assert ok.status_code == 200 and ok.json()["metadata"]["labels"] == {"a": "b"}


def test_secrets_are_discoverable_without_a_status_subresource(api):  # noqa: F811
    names = {r["name"] for r in client(api).get("/api/v1").json()["resources"]}
    assert "secrets" in names and "secrets/status" not in names
