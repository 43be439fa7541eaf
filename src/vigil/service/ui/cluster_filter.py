"""A list filter's cluster as the store keys it: the filters' selects send a cluster's id, while a URL someone
shares or types may name the cluster instead."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol, TypeVar

from sqlalchemy import Connection

from vigil.service.store.clusters import UnknownCluster, resolve_cluster
from vigil.service.ui.params import BadParam

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    class ClusterFiltered(DataclassInstance, Protocol):
        """A list view's filter dataclass (findings, images, workloads, processes)."""

        @property
        def cluster_id(self) -> str | None: ...


Filter = TypeVar("Filter", bound="ClusterFiltered")


def with_cluster_id(conn: Connection, f: Filter) -> Filter:
    """``f`` with its cluster given by id; a cluster no one registered is a bad ``cluster`` parameter naming
    it and the known names, where the store would have answered an empty list."""
    if f.cluster_id is None:
        return f
    try:
        cluster_id = resolve_cluster(conn, f.cluster_id)
    except UnknownCluster as exc:
        raise BadParam(f"cluster: {exc}") from None
    return dataclasses.replace(f, cluster_id=cluster_id)
