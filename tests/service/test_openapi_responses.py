"""The OpenAPI document describes every answer's body, and `vigil get`'s columns exist in the models."""

from __future__ import annotations

import typing

import httpx
from pydantic import BaseModel

from vigil.devtools.inventory import synthetic_snapshot
from vigil.wire import views
from vigil.wire.client import ServiceClient

from .helpers import post_batch


def _resolve(doc: dict, ref: str) -> dict:
    assert ref.startswith("#/components/schemas/"), ref
    name = ref.removeprefix("#/components/schemas/")
    assert name in doc["components"]["schemas"], f"{ref} points at no component"
    return doc["components"]["schemas"][name]


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_success_response_has_a_content_schema(live_service):
    doc = httpx.get(f"{live_service.url}/api/openapi.json").json()
    seen = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            success = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            assert success, f"{method.upper()} {path} documents no success response"
            for code, response in success.items():
                where = f"{method.upper()} {path} {code}"
                if code == "204":
                    assert "content" not in response, f"{where}: a 204 has no body"
                    continue
                content = response.get("content") or {}
                assert content, f"{where} has no content"
                for media_type, body in content.items():
                    schema = body.get("schema")
                    assert schema, f"{where} {media_type} has no schema"
                    if media_type == "application/json":
                        # A named model, not an untyped object.
                        assert "$ref" in schema, f"{where}: {schema}"
                        assert _resolve(doc, schema["$ref"]).get("properties"), (
                            f"{where}: {schema['$ref']} has no fields"
                        )
                    else:
                        assert schema.get("type") == "string", f"{where} {media_type}: {schema}"
                seen += 1
    # Every $ref anywhere in the document resolves.
    for ref in _refs(doc):
        _resolve(doc, ref)
    assert seen >= 40


def test_listing_and_stream_schemas_name_their_models(live_service):
    doc = httpx.get(f"{live_service.url}/api/openapi.json").json()
    listing = doc["paths"]["/api/v1/clusters"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    page = _resolve(doc, listing["$ref"])
    assert page["required"] == ["items"]
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Cluster"}
    assert set(_resolve(doc, "#/components/schemas/Cluster")["properties"]) == {
        "id",
        "name",
        "created_at",
        "last_seen_at",
        "status",
        "controller",
        "nodes",
        "pods",
        "risk",
    }
    stream = doc["paths"]["/api/v1/findings/stream"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    assert stream["text/event-stream"]["schema"]["x-event-data"] == {"$ref": "#/components/schemas/FindingStreamEvent"}
    assert set(_resolve(doc, "#/components/schemas/FindingStreamEvent")["properties"]) == {"event", "finding"}
    deletes = [
        (path, method) for path, item in doc["paths"].items() for method, op in item.items() if "204" in op["responses"]
    ]
    assert sorted(deletes) == [
        ("/api/v1/alerts/outputs/{output_id}", "delete"),
        ("/api/v1/runtime/allow/{entry_id}", "delete"),
        ("/api/v1/tokens/{token_id}", "delete"),
    ]


def _field_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The model a field holds (through Optional), or None for a plain value."""
    annotation = model.model_fields[name].annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def test_listing_columns_are_fields_of_their_models():
    assert set(views.LISTINGS) == {"clusters", "nodes", "workloads", "pods", "images", "findings"}
    for resource, model in views.LISTINGS.items():
        assert model.columns, resource
        for column in model.columns:
            current: type[BaseModel] | None = model
            for part in column.split("."):
                assert current is not None and part in current.model_fields, f"{resource}: {column!r}"
                current = _field_model(current, part)
            assert current is None, f"{resource}: {column!r} ends at a whole object, not a value"
    assert views.Cluster.columns == ("id", "name", "controller.status", "last_seen_at", "nodes", "pods")


def test_client_parses_listings_into_the_models(live_service):
    svc = live_service
    cid, cred = svc.register("typed")
    post_batch(svc, cred, synthetic_snapshot(cid, nodes=2, pods=4, images=2))
    with ServiceClient(svc.url, svc.token("viewer")) as client:
        nodes = client.list_views(views.Node, "/api/v1/nodes", {"cluster": cid})
        clusters = client.list_views(views.Cluster, "/api/v1/clusters")
        pods = client.list_views(views.Pod, "/api/v1/pods", {"cluster": cid}, limit=3)
    assert [n.name for n in nodes] == ["node-0000", "node-0001"]
    assert all(isinstance(n, views.Node) and n.cluster_id == cid for n in nodes)
    assert [(c.id, c.name, c.nodes, c.pods) for c in clusters] == [(cid, "typed", 2, 4)]
    assert clusters[0].last_seen_at is not None and clusters[0].last_seen_at.tzinfo is not None
    assert len(pods) == 3 and all(len(p.containers) >= 1 for p in pods)


def test_request_and_response_models_of_one_name_keep_their_own_schemas(live_service):
    # The inventory's Node (what a controller sends) and the listing's Node (what the service
    # answers) are different models of one name; each operation must point at its own.
    doc = httpx.get(f"{live_service.url}/api/openapi.json").json()
    page = doc["paths"]["/api/v1/nodes"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    listed = _resolve(doc, _resolve(doc, page["$ref"])["properties"]["items"]["items"]["$ref"])
    assert {"cluster_id", "updated_at", "sensor", "sensor_disabled"} <= set(listed["properties"])
    snapshot = _resolve(doc, "#/components/schemas/InventorySnapshot")
    assert snapshot["properties"]["nodes"]["items"] == {"$ref": "#/components/schemas/NodeInput"}
    sent = _resolve(doc, "#/components/schemas/NodeInput")
    assert "cluster_id" not in sent["properties"] and sent["additionalProperties"] is False
    pod = _resolve(doc, "#/components/schemas/PodInput")
    assert pod["properties"]["containers"]["items"] == {"$ref": "#/components/schemas/ContainerInput"}
    assert sorted(k for k in doc["components"]["schemas"] if k.endswith("Input")) == [
        "ContainerInput",
        "NodeInput",
        "PodInput",
        "WorkloadInput",
    ]
    # The findings stream's events describe the Finding the listing answers, not a second variant.
    event = _resolve(doc, "#/components/schemas/FindingStreamEvent")
    assert event["properties"]["finding"]["anyOf"] == [{"$ref": "#/components/schemas/Finding"}, {"type": "null"}]


def test_error_answers_are_declared_with_the_body_the_service_sends(live_service):
    svc = live_service
    doc = httpx.get(f"{svc.url}/api/openapi.json").json()
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    body = _resolve(doc, error_ref["$ref"])
    assert body["required"] == ["error", "detail"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]

    def declared(path: str, method: str) -> dict[str, dict]:
        responses = doc["paths"][path][method]["responses"]
        errors = {code: r for code, r in responses.items() if code[0] in "45"}
        for code, r in errors.items():
            assert r["content"]["application/json"]["schema"] == error_ref, (path, method, code)
        return errors

    assert sorted(declared("/api/v1/clusters/{cluster_id}", "get")) == ["401", "403", "404", "422"]
    assert sorted(declared("/api/v1/clusters", "get")) == ["400", "401", "403", "422"]
    assert sorted(declared("/api/v1/ingest/inventory", "post")) == ["400", "401", "403", "413", "415", "422", "503"]
    assert sorted(declared("/api/v1/images/{image_id}/packages", "get")) == ["400", "401", "403", "404", "409", "422"]
    # Probes need no token, and the document says so.
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert sorted(doc["paths"]["/healthz"]["get"]["responses"]) == ["200"]
    # What the service answers matches what the document declares.
    missing = svc.get("/api/v1/clusters/no-such-cluster", svc.token("viewer"))
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "detail"} and missing.json()["error"] == "not_found"
    invalid = svc.get("/api/v1/clusters", svc.token("viewer"), limit="many")
    assert invalid.status_code == 422
    assert invalid.json()["errors"] == [
        {"field": "query.limit", "message": "Input should be a valid integer, unable to parse string as an integer"}
    ]
