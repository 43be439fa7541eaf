"""What the API server does to a Secret on every write: decode and check ``data``, fold ``stringData``
into it, default ``type``, and keep ``type`` and an immutable Secret's data as they were (pure).
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from typing import Any

from .errors import ApiError

# MaxSecretSize in the API server's validation: the decoded values together.
MAX_SECRET_BYTES = 1024 * 1024
_KEY = re.compile(r"[-._a-zA-Z0-9]+\Z")
_ALPHABET = set(string.ascii_letters + string.digits + "+/=")


def _bad_base64_at(value: str) -> int:
    """The byte Go's strict base64 decoder names in its error."""
    for i, ch in enumerate(value):
        if ch not in _ALPHABET:
            return i
    return len(value) - len(value) % 4 if len(value) % 4 else max(len(value) - 1, 0)


def _decode(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ApiError(
            400, 'Secret in version "v1" cannot be handled as a Secret: v1.Secret.Data: decode base64: expects a string'
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400,
            'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte '
            f"{_bad_base64_at(value)}",
        ) from None


def _invalid(name: str, detail: str) -> ApiError:
    return ApiError(422, f'Secret "{name}" is invalid: {detail}')


def normalize_secret(obj: dict[str, Any], prev: dict[str, Any] | None) -> dict[str, Any]:
    """``obj`` as stored: ``data`` base64 (re-encoded canonically), no ``stringData``; ``prev`` is the
    stored Secret on an update, None on a create."""
    name = str((obj.get("metadata") or {}).get("name") or "")
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        raise ApiError(400, 'Secret in version "v1" cannot be handled as a Secret: v1.Secret.Data: expects an object')
    decoded = {key: _decode(value) for key, value in data.items()}
    string_data = obj.pop("stringData", None) or {}
    if not isinstance(string_data, dict) or not all(isinstance(v, str) for v in string_data.values()):
        raise ApiError(
            400,
            'Secret in version "v1" cannot be handled as a Secret: v1.Secret.StringData: expects an object of strings',
        )
    decoded.update({key: value.encode() for key, value in string_data.items()})  # stringData wins
    for key in decoded:
        if not _KEY.match(key):
            raise _invalid(
                name,
                f'data[{key}]: Invalid value: "{key}": a valid config key must consist of alphanumeric characters, '
                "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                "'[-._a-zA-Z0-9]+')",
            )
    if sum(len(v) for v in decoded.values()) > MAX_SECRET_BYTES:
        raise _invalid(name, f"data: Too long: must have at most {MAX_SECRET_BYTES} bytes")
    obj.setdefault("type", "Opaque")
    if decoded:
        obj["data"] = {key: base64.b64encode(decoded[key]).decode() for key in sorted(decoded)}
    else:
        obj.pop("data", None)
    if prev is not None:
        if obj["type"] != prev.get("type", "Opaque"):
            raise _invalid(name, f'type: Invalid value: "{obj["type"]}": field is immutable')
        if prev.get("immutable") is True:
            if obj.get("data") != prev.get("data"):
                raise _invalid(name, "data: Forbidden: field is immutable when `immutable` is set")
            if obj.get("immutable") is not True:
                raise _invalid(name, "immutable: Forbidden: field is immutable when `immutable` is set")
    return obj
