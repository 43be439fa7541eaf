"""Nodes with their sensor's status, for the API (every column) and a cluster's page in the console."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from vigil.clock import utcnow
from vigil.service.store.pagination import Sort, decode_cursor, encode_cursor, keyset_rows
from vigil.service.store.runtime import sensor_status
from vigil.service.store.schema import nodes, sensors
from vigil.service.store.views.common import Page, iso

BY_NAME = Sort(((nodes.c.cluster_id, "str"), (nodes.c.name, "str")))


@dataclass(frozen=True)
class NodeFilter:
    cluster_id: str | None = None
    status: str | None = None  # a sensor status (store.runtime.sensor_status); computed, so filtered here
    text: str | None = None  # part of the name


def _sensor(status: str, b) -> dict:
    """A node's sensor as its last heartbeat reported it (``b`` is None when none came)."""
    return {
        "status": status,
        "reported_status": b.status if b else None,
        "error": b.error if b else None,
        "version": b.version if b else None,
        "kernel": b.kernel if b else None,
        "btf": b.btf if b else None,
        "events_seen": b.events_seen if b else None,
        "events_lost": b.events_lost if b else None,
        "batches_spooled": b.batches_spooled if b else None,
        "batches_dropped": b.batches_dropped if b else None,
        "last_heartbeat_at": iso(b.heartbeat_at) if b else None,
    }


def list_nodes(conn: Connection, f: NodeFilter, after: str | None, limit: int) -> Page:
    """Every column of each node, with its sensor; by cluster and name."""
    stmt = select(nodes)
    if f.cluster_id:
        stmt = stmt.where(nodes.c.cluster_id == f.cluster_id)
    rows, nxt = keyset_rows(conn, stmt, BY_NAME, after, limit)
    beats = {}
    if rows:
        for beat in conn.execute(
            select(sensors).where(sensors.c.cluster_id.in_({r.cluster_id for r in rows}), sensors.c.node_name.in_([r.name for r in rows]))
        ):
            beats[(beat.cluster_id, beat.node_name)] = beat
    items = []
    for r in rows:
        d = {k: v for k, v in r._mapping.items() if not k.startswith("_k")}
        d["updated_at"] = iso(d["updated_at"])
        b = beats.get((r.cluster_id, r.name))
        d["sensor"] = _sensor(sensor_status(r.sensor_disabled, b), b)
        items.append(d)
    return Page(items, nxt)


def cluster_nodes(conn: Connection, cluster_id: str, f: NodeFilter, after: str | None, limit: int) -> Page:
    """A cluster's nodes with their monitoring status, by name, counted; the status filter is
    computed, so the page is cut here (with the same cursor, the last name)."""
    beats = {b.node_name: b for b in conn.execute(select(sensors).where(sensors.c.cluster_id == cluster_id))}
    now = utcnow()
    stmt = select(nodes).where(nodes.c.cluster_id == cluster_id)
    if f.text:
        stmt = stmt.where(func.lower(nodes.c.name).contains(f.text.lower(), autoescape=True))
    matched = []
    for r in conn.execute(stmt.order_by(nodes.c.name)):
        b = beats.get(r.name)
        s = sensor_status(r.sensor_disabled, b, now)
        if f.status and s != f.status:
            continue
        matched.append((r, b, s))
    start = 0
    if after:
        (last_name,) = decode_cursor(after, 1)
        start = next((i for i, (r, _, _) in enumerate(matched) if r.name > last_name), len(matched))
    chunk = matched[start : start + limit]
    nxt = encode_cursor([chunk[-1][0].name]) if start + limit < len(matched) and chunk else None
    items = []
    for r, b, s in chunk:
        items.append(
            {
                "name": r.name,
                "labels": r.labels,
                "kubelet_version": r.kubelet_version,
                "kernel_version": r.kernel_version,
                "os_image": r.os_image,
                "container_runtime": r.container_runtime,
                "architecture": r.architecture,
                "ready": next((c.get("status") for c in (r.conditions or []) if isinstance(c, dict) and c.get("type") == "Ready"), None)
                if isinstance(r.conditions, list)
                else (r.conditions or {}).get("Ready"),
                "sensor": _sensor(s, b),
            }
        )
    return Page(items, nxt, len(matched))


def sensor_summary(conn: Connection, cluster_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per cluster, how many nodes are in each monitoring status."""
    out: dict[str, dict[str, int]] = {cid: {} for cid in cluster_ids}
    if not cluster_ids:
        return out
    beats = {(b.cluster_id, b.node_name): b for b in conn.execute(select(sensors).where(sensors.c.cluster_id.in_(cluster_ids)))}
    now = utcnow()
    for cid, name, disabled in conn.execute(
        select(nodes.c.cluster_id, nodes.c.name, nodes.c.sensor_disabled).where(nodes.c.cluster_id.in_(cluster_ids))
    ):
        status = sensor_status(disabled, beats.get((cid, name)), now)
        out[cid][status] = out[cid].get(status, 0) + 1
    return out
