"""AdmissionReview (admission.k8s.io/v1) in and out (pure).

The body comes from the API server, but anything that can reach the webhook's port can send one:
it is read as untrusted input, bounded, and every way it can be wrong has an answer that names
what was wrong, never a trace.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

API_VERSION = "admission.k8s.io/v1"
# kube-apiserver refuses request bodies over 3 MiB, so no honest review is larger than an object
# of that size plus its old version; the margin covers the review's own fields.
MAX_REVIEW_BYTES = 7 * 1024 * 1024
# The API server truncates longer warnings; shortening them here keeps the end that matters.
MAX_WARNING_CHARS = 256
MAX_WARNINGS = 16


class ReviewError(ValueError):
    """A body that is no AdmissionReview this webhook can answer; ``status`` is the HTTP status to send."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReviewRequest:
    uid: str
    kind: str  # the object's kind (Pod, Deployment, ...)
    group: str
    resource: str
    sub_resource: str
    operation: str
    namespace: str
    name: str
    user: str
    dry_run: bool
    object: dict[str, Any] = field(repr=False)
    # What the object was before an UPDATE; None when the review carries none (a CREATE).
    old_object: dict[str, Any] | None = field(default=None, repr=False)


def _text(data: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ReviewError(f"{where}.{key} must be a non-empty string")
    return value


def _mapping(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ReviewError(f"{where}.{key} must be an object")
    return value


def parse_review(body: bytes) -> ReviewRequest:
    """The request inside ``body``, or a ReviewError saying what is wrong with it."""
    if len(body) > MAX_REVIEW_BYTES:
        raise ReviewError(f"AdmissionReview body of {len(body)} bytes exceeds the limit of {MAX_REVIEW_BYTES}", 413)
    if not body:
        raise ReviewError("empty body: expected an AdmissionReview (admission.k8s.io/v1) JSON object")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ReviewError(f"body must be a JSON object (an AdmissionReview), not {type(doc).__name__}")
    version, kind = doc.get("apiVersion"), doc.get("kind")
    if kind != "AdmissionReview":
        raise ReviewError(f"kind must be AdmissionReview, not {kind!r}")
    if version != API_VERSION:
        raise ReviewError(f"apiVersion {version!r} is not supported; this webhook speaks {API_VERSION}")
    request = _mapping(doc, "request", "AdmissionReview")
    uid = _text(request, "uid", "request")
    if len(uid) > 128:
        raise ReviewError("request.uid is longer than 128 characters")
    kind_doc = _mapping(request, "kind", "request")
    resource_doc = _mapping(request, "resource", "request")
    operation = _text(request, "operation", "request")
    if operation not in ("CREATE", "UPDATE", "DELETE", "CONNECT"):
        raise ReviewError(f"request.operation {operation!r} is not one of CREATE, UPDATE, DELETE, CONNECT")
    obj = request.get("object")
    if operation in ("CREATE", "UPDATE") and not isinstance(obj, dict):
        raise ReviewError(f"request.object must be an object for a {operation}")
    old_obj = request.get("oldObject")
    if old_obj is not None and not isinstance(old_obj, dict):
        raise ReviewError("request.oldObject must be an object or null")
    user_info = request.get("userInfo") or {}
    if not isinstance(user_info, dict):
        raise ReviewError("request.userInfo must be an object")
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise ReviewError("request.dryRun must be true or false")
    return ReviewRequest(
        uid=uid,
        kind=_text(kind_doc, "kind", "request.kind"),
        group=_text(kind_doc, "group", "request.kind", required=False),
        resource=_text(resource_doc, "resource", "request.resource"),
        sub_resource=_text(request, "subResource", "request", required=False),
        operation=operation,
        namespace=_text(request, "namespace", "request", required=False),
        name=_text(request, "name", "request", required=False),
        user=_text(user_info, "username", "request.userInfo", required=False),
        dry_run=dry_run,
        object=obj if isinstance(obj, dict) else {},
        old_object=old_obj if operation == "UPDATE" else None,
    )


def _short_warning(text: str) -> str:
    return text if len(text) <= MAX_WARNING_CHARS else text[: MAX_WARNING_CHARS - 1] + "…"


def review_response(
    uid: str,
    *,
    allowed: bool,
    message: str = "",
    code: int = 403,
    warnings: tuple[str, ...] | list[str] = (),
    patch: list[dict[str, Any]] | None = None,
) -> bytes:
    """The AdmissionReview the API server expects back for request ``uid``."""
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": code, "message": message}
    if warnings:
        shown = [_short_warning(w) for w in warnings[:MAX_WARNINGS]]
        if len(warnings) > MAX_WARNINGS:
            shown.append(f"and {len(warnings) - MAX_WARNINGS} more warnings")
        response["warnings"] = shown
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(patch)).decode()
    return orjson.dumps({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response})


def error_body(message: str) -> bytes:
    """What a caller whose body was not a review gets: the reason, as JSON."""
    return orjson.dumps({"error": "bad AdmissionReview", "detail": message})
