"""How routes describe what they answer: JSON bodies by the models in ``vigil.wire.views``, and the
bodies that are not JSON (server-sent events, Prometheus text) by their media type."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel

from vigil.service.api.body import adapter
from vigil.wire.views import View


class ViewRoute(APIRoute):
    """A route whose response model validates the body and serializes only the keys the body has,
    so a body that leaves a key out (a scan not queued yet, a finding without a runtime label)
    keeps its shape instead of gaining nulls."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        model = kwargs.get("response_model")
        if isinstance(model, type) and issubclass(model, View):
            kwargs["response_model_exclude_unset"] = True
        super().__init__(path, endpoint, **kwargs)


def event_stream(data: type[BaseModel], description: str) -> dict[str, Any]:
    """``responses=`` and ``openapi_extra=`` for a text/event-stream answer whose events carry ``data``."""
    # As the answer goes out, which is how the document's other response models are described.
    schema = adapter(data).json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    defs = {**schema.pop("$defs", {}), data.__name__: schema}
    content = {
        "text/event-stream": {
            "schema": {
                "type": "string",
                "description": f"{description}; each event's data is a {data.__name__} as JSON",
                "x-event-data": {"$ref": f"#/components/schemas/{data.__name__}"},
            }
        }
    }
    return {
        "responses": {200: {"description": description, "content": content}},
        "openapi_extra": {"x-vigil-defs": defs},
    }


def plain_text(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a plain-text answer."""
    return {200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}


class FieldError(BaseModel):
    field: str  # where, as "body.pods[0].uid" or "query.limit"
    message: str


class ErrorBody(BaseModel):
    """Every error answer's body (``vigil.service.api.errors``)."""

    error: str  # a stable code: unauthorized, forbidden, not_found, invalid_request, ...
    detail: str
    errors: list[FieldError] | None = None  # per field, on invalid_request only


def merge_defs(schema: dict[str, Any]) -> None:
    """Move the models that hand-documented bodies carry (``x-vigil-defs``) into the document's
    components. A request model may share its class name with a response model (the inventory's
    ``Node`` a controller sends, the ``Node`` a listing answers); the request's then becomes
    ``<name>Input``, as pydantic names the input side of one model, so neither overwrites the other."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for item in schema.get("paths", {}).values():
        for op in item.values():
            defs: dict[str, Any] = op.pop("x-vigil-defs", {}) or {}
            renamed = {name: f"{name}Input" for name, d in defs.items() if components.get(name, d) != d}
            if renamed:
                defs = _renamed_refs({renamed.get(n, n): d for n, d in defs.items()}, renamed)
                if "requestBody" in op:
                    op["requestBody"] = _renamed_refs(op["requestBody"], renamed)
            for name, d in defs.items():
                if components.setdefault(name, d) != d:
                    raise ValueError(f"two different models are both named {name!r} in the OpenAPI document")


def _renamed_refs(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX) and ref[len(_REF_PREFIX) :] in renamed:
            return {**node, "$ref": _REF_PREFIX + renamed[ref[len(_REF_PREFIX) :]]}
        return {k: _renamed_refs(v, renamed) for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed_refs(v, renamed) for v in node]
    return node


_REF_PREFIX = "#/components/schemas/"

# What each error status means, for the operations that can give it.
_ERROR_DESCRIPTIONS = {
    "400": "Malformed request: the body is not valid JSON or gzip, or the `after` cursor is not one this listing gave",
    "401": "No token, or one that is unknown, expired or revoked",
    "403": "The token's role may not call this operation",
    "404": "No such object",
    "413": "The body exceeds the limit for this route",
    "415": "The body is not application/json",
    "422": "A parameter or body field is invalid; `errors` names each",
    "503": "Too many large bodies are being read at once; retry after `Retry-After` seconds",
}


def error_response(description: str) -> dict[str, Any]:
    """One entry of a route's ``responses=`` for an error only that route gives (409, 502, ...)."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF_PREFIX + "ErrorBody"}}},
    }


def declare_errors(schema: dict[str, Any]) -> None:
    """Give every operation in an OpenAPI document the error answers it can give, all with the one
    error body, replacing FastAPI's default 422 (whose body is not the one the service sends)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components["ErrorBody"] = error_schema
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for item in schema.get("paths", {}).values():
        for op in item.values():
            params = op.get("parameters", [])
            codes: set[str] = set()
            if op.get("security", schema.get("security")):
                codes |= {"401", "403"}
            if params or "requestBody" in op:
                codes.add("422")
            if "requestBody" in op:
                codes |= {"400", "413", "415", "503"}
            if any(p.get("in") == "path" for p in params):
                codes.add("404")
            if any(p.get("in") == "query" and p.get("name") == "after" for p in params):
                codes.add("400")
            responses = op.setdefault("responses", {})
            for code in sorted(codes):
                declared = responses.get(code, {})
                responses[code] = {
                    "description": declared.get("description")
                    if code not in ("422",) and declared.get("description")
                    else _ERROR_DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": ref}},
                }
