"""Ingest from controllers and sensors: inventory batches and heartbeats, each scoped to the caller's
cluster; runtime records and sensor heartbeats under a sensor credential also to its node."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vigil.gcpause import paused_gc
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import cluster_writer, runtime_analyzer, sensor_writer
from vigil.service.api.errors import forbidden
from vigil.service.api.prevention import runtime_policy_changed
from vigil.service.api.responses import ViewRoute
from vigil.service.jobs.runtime import RuntimeAnalyzer
from vigil.service.store import clusters as cluster_store
from vigil.service.store import inventory
from vigil.service.store import prevention as prevention_store
from vigil.service.store import runtime as runtime_store
from vigil.service.store import runtime_analysis as runtime_analysis_store
from vigil.service.store.notify import RUNTIME_QUEUED, notify
from vigil.service.store.tokens import Principal
from vigil.wire.inventory import Heartbeat, IngestResult, InventoryBatch, InventorySnapshot
from vigil.wire.runtime import RuntimeBatch, SensorHeartbeat
from vigil.wire.views import SensorHeartbeatAnswer, Status

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"], route_class=ViewRoute)


def _same_cluster(who: Principal, cluster_id: str) -> None:
    if who.cluster_id != cluster_id:
        raise forbidden(f"this credential is scoped to cluster {who.cluster_id}; it cannot write cluster {cluster_id}")


def _same_node(who: Principal, node_name: str) -> None:
    if who.role == "sensor" and who.node_name != node_name:
        raise forbidden(
            f"this sensor credential is scoped to node {who.node_name}; it cannot write node {node_name} "
            "(a sensor writes its own node's runtime records and heartbeats only)"
        )


@router.post(
    "/inventory",
    response_model=IngestResult,
    summary=(
        "Apply an inventory snapshot (replaces the cluster's state) or delta; gzip accepted; idempotent per batch_id"
    ),
    openapi_extra=openapi_body(InventoryBatch),
)
async def ingest_inventory(
    request: Request,
    who: Principal = Depends(cluster_writer),
    analyzer: RuntimeAnalyzer = Depends(runtime_analyzer),
) -> IngestResult:
    batch = await parse_body(request, InventoryBatch)
    _same_cluster(who, batch.cluster_id)
    metrics = request.app.state.metrics

    def work() -> IngestResult:
        with paused_gc(), request.app.state.engine.begin() as conn:
            if not inventory.claim_batch(conn, batch.cluster_id, batch.batch_id, batch.kind):
                return IngestResult(batch_id=batch.batch_id, applied=False)
            if isinstance(batch, InventorySnapshot):
                counts = inventory.apply_snapshot(conn, batch)
            else:
                counts = inventory.apply_delta(conn, batch)
            prevention_store.inventory_changed(conn, batch.cluster_id)  # the nodes' runtime policies follow
            notify(conn, RUNTIME_QUEUED)  # queued records of these containers may be ready on any replica
        return IngestResult(batch_id=batch.batch_id, applied=True, counts=counts)

    result = await run_in_threadpool(work)
    if result.applied:
        analyzer.wake()  # runtime records waiting for these containers can be analysed now
        runtime_policy_changed(request.app)  # containers of a node came or went: its sensor's policy too
    metrics.ingest_batches.labels(batch.kind, "applied" if result.applied else "duplicate").inc()
    for key, n in result.counts.items():
        metrics.ingest_objects.labels(key).inc(n)
    log.info(
        "inventory batch",
        extra={
            "cluster_id": batch.cluster_id,
            "batch_id": batch.batch_id,
            "kind": batch.kind,
            "applied": result.applied,
            **result.counts,
        },
    )
    return result


@router.post(
    "/heartbeat", response_model=Status, summary="A controller's heartbeat", openapi_extra=openapi_body(Heartbeat)
)
async def heartbeat(request: Request, who: Principal = Depends(cluster_writer)) -> dict:
    beat: Heartbeat = await parse_body(request, Heartbeat)
    _same_cluster(who, beat.cluster_id)

    def work() -> None:
        with request.app.state.engine.begin() as conn:
            cluster_store.record_controller_heartbeat(conn, beat.cluster_id, beat.version, beat.interval_seconds)

    await run_in_threadpool(work)
    return {"status": "ok"}


@router.post(
    "/runtime",
    response_model=IngestResult,
    summary="Apply a sensor's batch of runtime records; gzip accepted; idempotent per batch_id",
    openapi_extra=openapi_body(RuntimeBatch),
)
async def ingest_runtime(
    request: Request,
    who: Principal = Depends(sensor_writer),
    analyzer: RuntimeAnalyzer = Depends(runtime_analyzer),
) -> IngestResult:
    batch: RuntimeBatch = await parse_body(request, RuntimeBatch)
    _same_cluster(who, batch.cluster_id)
    _same_node(who, batch.node_name)
    metrics = request.app.state.metrics

    def work() -> IngestResult:
        with request.app.state.engine.begin() as conn:
            if not inventory.claim_batch(conn, batch.cluster_id, batch.batch_id, "runtime"):
                return IngestResult(batch_id=batch.batch_id, applied=False)
            counts = runtime_store.apply_runtime_batch(conn, batch)
            counts.update(prevention_store.apply_preventions(conn, batch))
            # Queued in the same transaction, so no record escapes runtime analysis.
            runtime_analysis_store.enqueue_batch(conn, batch)
            # The replica holding the runtime lease may be another one: it wakes at the commit.
            notify(conn, RUNTIME_QUEUED)
        return IngestResult(batch_id=batch.batch_id, applied=True, counts=counts)

    result = await run_in_threadpool(work)
    if result.applied:
        analyzer.wake()  # findings within milliseconds of the batch, not at the next tick
    metrics.ingest_batches.labels("runtime", "applied" if result.applied else "duplicate").inc()
    log.info(
        "runtime batch",
        extra={
            "cluster_id": batch.cluster_id,
            "node": batch.node_name,
            "batch_id": batch.batch_id,
            "seq": batch.seq,
            "applied": result.applied,
            **result.counts,
        },
    )
    return result


@router.post(
    "/sensor-heartbeat",
    response_model=SensorHeartbeatAnswer,
    summary="A sensor's heartbeat; the answer says whether the node is labelled vigil.dev/sensor=disabled",
    openapi_extra=openapi_body(SensorHeartbeat),
)
async def sensor_heartbeat(request: Request, who: Principal = Depends(sensor_writer)) -> dict:
    beat: SensorHeartbeat = await parse_body(request, SensorHeartbeat)
    _same_cluster(who, beat.cluster_id)
    _same_node(who, beat.node_name)

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            return runtime_store.record_sensor_heartbeat(conn, beat)

    disabled = await run_in_threadpool(work)
    return {"status": "ok", "sensor_disabled": disabled}
