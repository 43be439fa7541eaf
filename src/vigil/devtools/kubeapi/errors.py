"""Kubernetes ``Status`` failures, as the real API server words them."""

from __future__ import annotations

from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


class ApiError(Exception):
    """A request the API server refuses; becomes a ``Status`` object with ``code``."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict | None = None,
        continue_token: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details
        self.continue_token = continue_token
        self.body: dict[str, Any] | None = None  # a Status to send as it is (an admission webhook's)

    def status(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        return failure_status(self.code, self.message, self.reason, self.details, self.continue_token)


def failure_status(
    code: int, message: str, reason: str, details: dict | None = None, continue_token: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if continue_token:
        meta["continue"] = continue_token
    out: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": meta,
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        out["details"] = details
    return out


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    what = f"{plural}.{group}" if group else plural
    return ApiError(404, f'{what} "{name}" not found', details={"name": name, "group": group, "kind": plural})


def already_exists(plural: str, name: str, group: str = "") -> ApiError:
    what = f"{plural}.{group}" if group else plural
    return ApiError(
        409, f'{what} "{name}" already exists', "AlreadyExists", details={"name": name, "group": group, "kind": plural}
    )


def conflict(plural: str, name: str, group: str = "") -> ApiError:
    what = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        "Conflict",
        details={"name": name, "group": group, "kind": plural},
    )


def too_old_watch(requested: int, oldest: int) -> ApiError:
    return ApiError(410, f"too old resource version: {requested} ({oldest})", "Expired")


CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)
