"""Inventory queries: nodes, workloads, pods, images (with blast radius)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from vigil.service.api.deps import reader
from vigil.service.api.query import cluster_query
from vigil.service.api.responses import ViewRoute
from vigil.service.store.pagination import DEFAULT_LIMIT, MAX_LIMIT
from vigil.service.store.tokens import Principal
from vigil.service.store.views import images as image_views
from vigil.service.store.views import nodes as node_views
from vigil.service.store.views import pods as pod_views
from vigil.service.store.views import processes as process_views
from vigil.service.store.views import workloads as workload_views
from vigil.wire.views import Image, Node, Page, Pod, Process, Workload

router = APIRouter(prefix="/api/v1", tags=["inventory"], route_class=ViewRoute)

Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size")
After = Query(None, description="cursor from the previous page's `next`")


@router.get("/nodes", response_model=Page[Node], summary="Nodes")
def nodes(
    request: Request,
    cluster: str | None = Depends(cluster_query),
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        p = node_views.list_nodes(conn, node_views.NodeFilter(cluster_id=cluster), after, limit)
    return {"items": p.items, "next": p.next}


@router.get("/workloads", response_model=Page[Workload], summary="Top-level workloads with their pod counts")
def workloads(
    request: Request,
    cluster: str | None = Depends(cluster_query),
    namespace: str | None = None,
    kind: str | None = None,
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        f = workload_views.WorkloadFilter(cluster, namespace, kind)
        p = workload_views.list_workloads(conn, f, "name", False, after, limit)
    return {"items": p.items, "next": p.next}


@router.get("/pods", response_model=Page[Pod], summary="Pods with their containers")
def pods(
    request: Request,
    cluster: str | None = Depends(cluster_query),
    namespace: str | None = None,
    node: str | None = None,
    workload_kind: str | None = None,
    workload_name: str | None = None,
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        f = pod_views.PodFilter(cluster, namespace, node, workload_kind, workload_name)
        p = pod_views.list_pods(conn, f, after, limit)
    return {"items": p.items, "next": p.next}


@router.get(
    "/images",
    response_model=Page[Image],
    summary="Images with blast radius (containers, workloads and clusters running each)",
)
def images(
    request: Request,
    cluster: str | None = Depends(cluster_query),
    registry: str | None = None,
    repository: str | None = None,
    running: bool = Query(False, description="only images some container runs now"),
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        f = image_views.ImageFilter(registry=registry, repository=repository, cluster_id=cluster, in_use=running)
        p = image_views.list_images(conn, f, "id", False, after, limit)
    return {"items": p.items, "next": p.next}


@router.get(
    "/processes",
    response_model=Page[Process],
    summary="What executed: runtime records per container, file sha256 and path (Runtime Impact)",
)
def processes(
    request: Request,
    cluster: str | None = Depends(cluster_query),
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
        f = process_views.ProcessFilter(
            cluster_id=cluster, node=node, container_id=container_id, pod_uid=pod_uid, sha256=sha256, kind=kind
        )
        p = process_views.list_execution_records(conn, f, after, limit)
    return {"items": p.items, "next": p.next}
