"""Runtime records from sensors: what executed in which container, merged per (container, kind, sha256, path),
and activities (file accesses on watched paths, kernel operations) merged per (container, kind, target).

A record repeated across batches adds to its count, widens its first/last seen
window, and keeps the first few samples; the container it names may not be in
the inventory yet (the sensor can be faster than the controller), so records
are kept as they come and joined at read time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from vigil.clock import as_utc, utcnow
from vigil.service.store.chunks import chunks
from vigil.service.store.schema import executions, nodes, runtime_activities, sensors
from vigil.wire.base import INT64_MAX
from vigil.wire.runtime import MAX_SAMPLES, ActivityRecord, RuntimeBatch, SensorHeartbeat

_KEY = (executions.c.container_id, executions.c.kind, executions.c.sha256, executions.c.path)
_ACTIVITY_KEY = (runtime_activities.c.container_id, runtime_activities.c.kind, runtime_activities.c.target)


def _row_key(container_id: str | None, kind: str, sha256: str | None, path: str) -> tuple[str, str, str, str]:
    return (container_id or "", kind, sha256 or "", path)


def activity_key(a: ActivityRecord) -> tuple[str, str, str]:
    return (a.container_id or "", a.kind, a.target)


def _merge(
    conn: Connection,
    batch: RuntimeBatch,
    table: Table,
    key_columns: tuple[Any, ...],
    keyed: list[tuple[tuple, Any]],
    values: Callable[[Any], dict[str, Any]],
) -> tuple[int, int]:
    """Insert the batch's aggregates that are new, merge the others into their rows (count added,
    first/last seen widened, the first samples kept): (new, merged)."""
    cid = batch.cluster_id
    existing: dict[tuple, Row[*tuple[Any, ...]]] = {}
    names = [c.name for c in key_columns]
    for chunk in chunks([k for k, _ in keyed]):
        for row in conn.execute(select(table).where(table.c.cluster_id == cid, tuple_(*key_columns).in_(chunk))):
            existing[tuple(row._mapping[n] for n in names)] = row
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, r in keyed:
        samples = [s.model_dump(mode="json") for s in r.samples]
        stored = existing.get(key)
        if stored is None:
            inserts.append(
                dict(
                    cluster_id=cid,
                    node_name=batch.node_name,
                    **dict(zip(names, key, strict=True)),
                    **values(r),
                    pod_uid=r.pod_uid,
                    first_seen_at=r.first_seen,
                    last_seen_at=r.last_seen,
                    count=r.count,
                    samples=samples[:MAX_SAMPLES],
                )
            )
            continue
        first, last = as_utc(stored.first_seen_at), as_utc(stored.last_seen_at)
        updates.append(
            {
                "row_id": stored.id,
                # By name: to a type checker, Row.count is the tuple method.
                # Saturates: the column is a signed 64-bit integer.
                "new_count": min(stored._mapping["count"] + r.count, INT64_MAX),
                "new_first": min(first, r.first_seen),
                "new_last": max(last, r.last_seen),
                "new_pod_uid": stored.pod_uid or r.pod_uid,
                "new_samples": (list(stored.samples) + samples)[:MAX_SAMPLES],
            }
        )
    if updates:
        # One statement for all merged rows: the driver sends them in one round trip (a pipeline).
        c = table.c
        conn.execute(
            update(table)
            .where(c.id == bindparam("row_id"))
            .values(
                count=bindparam("new_count", type_=c["count"].type),
                first_seen_at=bindparam("new_first", type_=c.first_seen_at.type),
                last_seen_at=bindparam("new_last", type_=c.last_seen_at.type),
                pod_uid=bindparam("new_pod_uid", type_=c.pod_uid.type),
                node_name=batch.node_name,
                samples=bindparam("new_samples", type_=c.samples.type),
            ),
            updates,
        )
    if inserts:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(table), inserts)
    return len(inserts), len(updates)


def _activity_values(a: ActivityRecord) -> dict[str, Any]:
    # The newest upper-layer answer and detail are kept only for a new row: the first sighting names it.
    return {"upper_layer": a.upper_layer, "detail": dict(a.detail)}


def apply_runtime_batch(conn: Connection, batch: RuntimeBatch) -> dict[str, int]:
    records = [(_row_key(r.container_id, r.kind, r.sha256, r.path), r) for r in batch.records]
    new, merged = _merge(conn, batch, executions, _KEY, records, lambda r: {})
    activities = [(activity_key(a), a) for a in batch.activities]
    new_a, merged_a = _merge(conn, batch, runtime_activities, _ACTIVITY_KEY, activities, _activity_values)
    return {
        "records": len(batch.records),
        "new": new,
        "merged": merged,
        "activities": len(batch.activities),
        "activities_new": new_a,
        "activities_merged": merged_a,
    }


def record_sensor_heartbeat(conn: Connection, beat: SensorHeartbeat) -> bool:
    """Store the heartbeat; return whether the node is labelled for the sensor to stay off."""
    values = dict(
        status=beat.status,
        error=beat.error,
        version=beat.version,
        kernel=beat.kernel,
        btf=beat.btf,
        events_seen=beat.events_seen,
        events_lost=beat.events_lost,
        events_filtered=beat.events_filtered,
        batches_spooled=beat.batches_spooled,
        batches_dropped=beat.batches_dropped,
        records_dropped=beat.records_dropped,
        interval_s=beat.interval_seconds,
        policy_revision=beat.policy_revision,
        enforcement_error=beat.enforcement_error,
        heartbeat_at=utcnow(),
    )
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(sensors).values(cluster_id=beat.cluster_id, node_name=beat.node_name, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["cluster_id", "node_name"], set_=values))
    disabled = conn.execute(
        select(nodes.c.sensor_disabled).where(nodes.c.cluster_id == beat.cluster_id, nodes.c.name == beat.node_name)
    ).scalar()
    return bool(disabled)


def sensor_status(node_sensor_disabled: bool, sensor_row, now: datetime | None = None) -> str:
    """A node's monitoring status, as the console shows it.

    disabled: labelled vigil.dev/sensor=disabled; monitored_with_sensor: a sensor
    beats; sensor_failed: its sensor said it failed, or stopped beating (3 missed);
    monitored: inventory only (no sensor has ever reported).
    """
    if node_sensor_disabled:
        return "disabled"
    if sensor_row is None:
        return "monitored"
    if sensor_row.status == "disabled":
        return "disabled"
    now = now or utcnow()
    stale = (now - as_utc(sensor_row.heartbeat_at)).total_seconds() > 3 * sensor_row.interval_s
    if sensor_row.status == "failed" or stale:
        return "sensor_failed"
    return "monitored_with_sensor"
