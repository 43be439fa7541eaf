"""Nodes with their sensor's status: one listing for the API and a cluster's page in the console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, false, func, select, tuple_

from vigil.clock import utcnow
from vigil.service.store.chunks import chunks
from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.runtime import sensor_status
from vigil.service.store.schema import nodes, sensors
from vigil.service.store.views.common import Page, iso

BY_NAME = Sort(((nodes.c.cluster_id, "str"), (nodes.c.name, "str")))


@dataclass(frozen=True)
class NodeFilter:
    cluster_id: str | None = None
    status: str | None = None  # a sensor status (store.runtime.sensor_status); computed, so matched in Python
    text: str | None = None  # part of the name


def _sensor(status: str, b: Row | None) -> dict:
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
        "policy_revision": b.policy_revision if b else None,
        "enforcement_error": b.enforcement_error if b else None,
    }


def _conditions(f: NodeFilter) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = []
    if f.cluster_id:
        cond.append(nodes.c.cluster_id == f.cluster_id)
    if f.text:
        cond.append(func.lower(nodes.c.name).contains(f.text.lower(), autoescape=True))
    return cond


def _beats(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
    """The last heartbeat of each (cluster id, node name) that has one."""
    out: dict[tuple[str, str], Row] = {}
    for part in chunks(sorted(set(keys))):
        stmt = select(sensors).where(tuple_(sensors.c.cluster_id, sensors.c.node_name).in_(list(part)))
        out.update({(b.cluster_id, b.node_name): b for b in conn.execute(stmt)})
    return out


def _with_status(
    conn: Connection, cond: list[ColumnElement[bool]], status: str, now: datetime
) -> list[tuple[str, str]]:
    """The keys of every node matching ``cond`` whose sensor status, computed at ``now``, is ``status``."""
    candidates = [
        (cid, name, disabled)
        for cid, name, disabled in conn.execute(
            select(nodes.c.cluster_id, nodes.c.name, nodes.c.sensor_disabled).where(*cond)
        )
    ]
    beats = _beats(conn, [(cid, name) for cid, name, _ in candidates])
    return [
        (cid, name)
        for cid, name, disabled in candidates
        if sensor_status(disabled, beats.get((cid, name)), now) == status
    ]


def list_nodes(conn: Connection, f: NodeFilter, after: str | None, limit: int) -> Page:
    """Every column of each node matching ``f`` with its sensor, by cluster and name, counted.

    The sensor status is computed from the last heartbeat, so a status filter first finds the
    matching nodes' keys; the page is then cut by the same keyset as without it."""
    now = utcnow()
    cond = _conditions(f)
    if f.status:
        keys = _with_status(conn, cond, f.status, now)
        total = len(keys)
        cond.append(tuple_(nodes.c.cluster_id, nodes.c.name).in_(keys) if keys else false())
    else:
        total = conn.execute(select(func.count()).select_from(nodes).where(*cond)).scalar_one()
    rows, nxt = keyset_rows(conn, select(nodes).where(*cond), BY_NAME, after, limit)
    beats = _beats(conn, [(r.cluster_id, r.name) for r in rows])
    items = []
    for r in rows:
        d: dict[str, Any] = {k: v for k, v in r._mapping.items() if not k.startswith("_k")}
        d["updated_at"] = iso(d["updated_at"])
        b = beats.get((r.cluster_id, r.name))
        d["sensor"] = _sensor(sensor_status(r.sensor_disabled, b, now), b)
        items.append(d)
    return Page(items, nxt, total)


def sensor_summary(conn: Connection, cluster_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per cluster, how many nodes are in each monitoring status."""
    out: dict[str, dict[str, int]] = {cid: {} for cid in cluster_ids}
    if not cluster_ids:
        return out
    beats = {
        (b.cluster_id, b.node_name): b
        for b in conn.execute(select(sensors).where(sensors.c.cluster_id.in_(cluster_ids)))
    }
    now = utcnow()
    for cid, name, disabled in conn.execute(
        select(nodes.c.cluster_id, nodes.c.name, nodes.c.sensor_disabled).where(nodes.c.cluster_id.in_(cluster_ids))
    ):
        status = sensor_status(disabled, beats.get((cid, name)), now)
        out[cid][status] = out[cid].get(status, 0) + 1
    return out
