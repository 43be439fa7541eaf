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
    schema = adapter(data).json_schema(ref_template="#/components/schemas/{model}")
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
