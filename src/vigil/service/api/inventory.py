"""Inventory queries: nodes, workloads, pods, images (with blast radius)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from vigil.service.api.deps import reader
from vigil.service.api.responses import ViewRoute
from vigil.service.store import queries
from vigil.service.store.pagination import DEFAULT_LIMIT, MAX_LIMIT
from vigil.service.store.tokens import Principal
from vigil.wire.views import Image, Node, Page, Pod, Process, Workload

router = APIRouter(prefix="/api/v1", tags=["inventory"], route_class=ViewRoute)

Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size")
After = Query(None, description="cursor from the previous page's `next`")


@router.get("/nodes", response_model=Page[Node], summary="Nodes")
def nodes(
    request: Request,
    cluster: str | None = None,
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        p = queries.list_nodes(conn, cluster, after, limit)
    return {"items": p.items, "next": p.next}


@router.get("/workloads", response_model=Page[Workload], summary="Top-level workloads with their pod counts")
def workloads(
    request: Request,
    cluster: str | None = None,
    namespace: str | None = None,
    kind: str | None = None,
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        p = queries.list_workloads(conn, cluster, namespace, kind, after, limit)
    return {"items": p.items, "next": p.next}


@router.get("/pods", response_model=Page[Pod], summary="Pods with their containers")
def pods(
    request: Request,
    cluster: str | None = None,
    namespace: str | None = None,
    node: str | None = None,
    workload_kind: str | None = None,
    workload_name: str | None = None,
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        p = queries.list_pods(conn, cluster, namespace, node, workload_kind, workload_name, after, limit)
    return {"items": p.items, "next": p.next}


@router.get(
    "/images",
    response_model=Page[Image],
    summary="Images with blast radius (containers, workloads and clusters running each)",
)
def images(
    request: Request,
    cluster: str | None = Query(None, description="only images running in this cluster"),
    registry: str | None = None,
    repository: str | None = None,
    running: bool = Query(False, description="only images some container runs now"),
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        p = queries.list_images(conn, cluster, registry, repository, running, after, limit)
    return {"items": p.items, "next": p.next}


@router.get(
    "/processes",
    response_model=Page[Process],
    summary="What executed: runtime records per container, file sha256 and path (Runtime Impact)",
)
def processes(
    request: Request,
    cluster: str | None = None,
    node: str | None = None,
    container_id: str | None = None,
    pod_uid: str | None = None,
    sha256: str | None = None,
    kind: str | None = Query(None, description="executable, script or library"),
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        p = queries.list_executions(conn, cluster, node, container_id, pod_uid, sha256, kind, after, limit)
    return {"items": p.items, "next": p.next}
