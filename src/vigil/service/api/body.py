"""Request bodies parsed after authentication, so an anonymous caller learns nothing from 400s.

FastAPI would parse a declared body before running dependencies; these endpoints
take the raw request, authenticate, then validate with pydantic's JSON parser.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from vigil.gcpause import paused_gc

T = TypeVar("T")
_INLINE_LIMIT = 256 * 1024
# A JSON string holds NUL only as the escape \u0000 after an even run of backslashes; PostgreSQL
# text cannot store it, so such a body is refused before it reaches the store.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_ADAPTERS: dict[Any, TypeAdapter] = {}


def adapter(model: Any) -> TypeAdapter:
    if model not in _ADAPTERS:
        _ADAPTERS[model] = TypeAdapter(model)
    return _ADAPTERS[model]


def _validate_large(model: Any, raw: bytes) -> Any:
    with paused_gc():
        return adapter(model).validate_json(raw)


async def parse_body(request: Request, model: Any) -> Any:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        from vigil.service.api.errors import ApiError

        raise ApiError(415, "unsupported_media_type", f"content type {ctype!r} is not accepted; send application/json")
    raw = await request.body()
    if not raw.strip():
        from vigil.service.api.errors import bad_request

        raise bad_request("request body is empty; a JSON object is required")
    if _NUL_ESCAPE.search(raw):
        from vigil.service.api.errors import ApiError

        raise ApiError(422, "invalid_request", "body: a string holds a NUL character (\\u0000), which no field may")
    try:
        if len(raw) < _INLINE_LIMIT:
            return adapter(model).validate_json(raw)
        # Large batches are validated off the event loop, which keeps answering
        # health checks and small requests meanwhile.
        return await run_in_threadpool(_validate_large, model, raw)
    except ValidationError as exc:
        errors = []
        for e in exc.errors(include_url=False):
            error = dict(e)
            error["loc"] = ("body", *e.get("loc", ()))
            errors.append(error)
        raise RequestValidationError(errors) from None


def openapi_body(model: Any, example: dict | None = None) -> dict:
    """openapi_extra documenting a body that is parsed by hand."""
    schema = adapter(model).json_schema(ref_template="#/components/schemas/{model}")
    content: dict = {"schema": {k: v for k, v in schema.items() if k != "$defs"}}
    if example:
        content["example"] = example
    return {
        "requestBody": {"required": True, "content": {"application/json": content}},
        "x-vigil-defs": schema.get("$defs", {}),
    }
