"""Admission: the decisions the clusters' admission webhooks recorded (denials, warnings, audits, break-glass
uses), newest first, filtered by cluster, namespace and outcome; everyone signed in sees them."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from vigil.policy.enforcement import Outcome
from vigil.service.store import admission as admission_store
from vigil.service.store.clusters import UnknownCluster, resolve_cluster
from vigil.service.store.schema import clusters
from vigil.service.ui import params, web

router = APIRouter()
OUTCOMES = tuple(o.value for o in Outcome)
MAX_NAMESPACE = 63  # a Kubernetes namespace name


@router.get("/admission")
def admission(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    cluster = params.text(q, "cluster")
    namespace = params.text(q, "namespace", MAX_NAMESPACE)
    outcome = params.choice(q, "outcome", OUTCOMES)
    limit = params.page_size(q)
    # The cursor is the id of the last decision shown: the next page holds the older ones.
    before = params.integer(q, "after")
    with request.app.state.engine.connect() as conn:
        if cluster is not None:
            # A shared URL may name the cluster; the filter's choices give its id.
            try:
                cluster = resolve_cluster(conn, cluster)
            except UnknownCluster as exc:
                raise params.BadParam(f"cluster: {exc}") from None
        rows = admission_store.list_decisions(
            conn, cluster=cluster, namespace=namespace, outcome=outcome, limit=limit + 1, before_id=before
        )
        choices = conn.execute(select(clusters.c.id, clusters.c.name).order_by(clusters.c.name)).all()
    names = {cid: name for cid, name in choices}
    return web.render(
        request,
        "admission.html",
        v,
        decisions=rows[:limit],
        next=str(rows[limit - 1].id) if len(rows) > limit else None,
        names=names,
        clusters=choices,
        cluster=cluster,
        namespace=namespace,
        outcome=outcome,
        OUTCOMES=OUTCOMES,
    )
