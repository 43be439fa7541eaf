"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .resources import ResourceType

_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE = {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp of the object.", "priority": 0}
_POD_COLUMNS = [
    _NAME,
    {"name": "Ready", "type": "string", "format": "", "description": "ready containers / containers", "priority": 0},
    {
        "name": "Status",
        "type": "string",
        "format": "",
        "description": "The aggregate status of the pod.",
        "priority": 0,
    },
    {
        "name": "Restarts",
        "type": "string",
        "format": "",
        "description": "The number of times the containers restarted.",
        "priority": 0,
    },
    _AGE,
    {"name": "Node", "type": "string", "format": "", "description": "The node the pod is bound to.", "priority": 1},
]


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in accept  # type: ignore[operator]


def age(timestamp: str | None, now: _dt.datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        created = _dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.UTC)
    except ValueError:
        return "<unknown>"
    seconds = int(((now or _dt.datetime.now(_dt.UTC)) - created).total_seconds())
    if seconds < 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _pod_cells(obj: dict) -> list[Any]:
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for s in statuses:
        waiting = (s.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
    return [
        obj["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        str(restarts),
        age(obj["metadata"].get("creationTimestamp")),
        spec.get("nodeName") or "<none>",
    ]


def table(rt: ResourceType, objects: list[dict], list_meta: dict | None = None) -> dict:
    columns = _POD_COLUMNS if rt.kind == "Pod" else [_NAME, _AGE]
    rows = []
    for obj in objects:
        cells = (
            _pod_cells(obj)
            if rt.kind == "Pod"
            else [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"))]
        )
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta or {}),
        "columnDefinitions": columns,
        "rows": rows,
    }
