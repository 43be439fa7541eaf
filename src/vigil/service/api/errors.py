"""One error shape for every endpoint: {"error": code, "detail": why, ["errors": per-field]}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": 'Bearer realm="vigil"'})


def forbidden(detail: str) -> ApiError:
    return ApiError(403, "forbidden", detail)


def bad_request(detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", detail)


def _field(loc: tuple) -> str:
    # ("body", "pods", 0, "uid") -> "pods[0].uid"; the "body"/"query" prefix says where.
    parts = list(loc)
    where = parts.pop(0) if parts and parts[0] in ("body", "query", "path", "header") else "body"
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("snapshot", "delta") and where == "body" and out == "":
            continue  # the discriminated union's tag is not a field the sender wrote
        else:
            out += f".{p}" if out else str(p)
    return f"{where}.{out}" if out else where


def _message(err: dict) -> str:
    msg = err.get("msg", "invalid")
    return msg.removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            e = next(e for e in errors if e.get("type") == "json_invalid")
            ctx = e.get("ctx", {})
            return JSONResponse(
                {"error": "bad_request", "detail": f"body is not valid JSON: {ctx.get('error', 'parse error')}"},
                status_code=400,
            )
        fields = [{"field": _field(tuple(e.get("loc", ()))), "message": _message(e)} for e in errors[:50]]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        if len(errors) > 5:
            detail += f"; and {len(errors) - 5} more"
        return JSONResponse({"error": "invalid_request", "detail": detail, "errors": fields}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(exc.status_code, "error")
        return JSONResponse(
            {"error": code, "detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )


def install_store_errors(app: FastAPI) -> None:
    from vigil.service.store.pagination import BadCursor

    @app.exception_handler(BadCursor)
    async def _cursor(_request: Request, exc: BadCursor) -> JSONResponse:
        return JSONResponse({"error": "bad_request", "detail": f"query.after: {exc}"}, status_code=400)
