"""What every view shares: a page of items, equality filters, image references and cluster names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, select

from vigil.clock import iso
from vigil.model.image import image_text
from vigil.service.store.schema import clusters

__all__ = ["Page", "cluster_names", "image_ref", "iso", "where_equal"]


@dataclass(frozen=True)
class Page:
    """One page of a listing: ``next`` resumes after its last item; ``total`` counts every match
    (for the console's "n of m"; None where the listing does not count)."""

    items: list[dict]
    next: str | None
    total: int | None = None


def where_equal(stmt: Select, filters: Iterable[tuple[ColumnElement[Any], object]]) -> Select:
    """``stmt`` narrowed to rows whose column equals each given value; a filter left empty narrows nothing."""
    for column, value in filters:
        if value:
            stmt = stmt.where(column == value)
    return stmt


def image_ref(registry: str | None, repository: str | None, tag: str | None, digest: str | None) -> str | None:
    """An image's stored columns as one reference; None for a row without an image (an outer join's)."""
    return None if repository is None else image_text(registry, repository, tag, digest)


def cluster_names(conn: Connection, ids) -> dict[str, str]:
    ids = [i for i in ids if i]
    if not ids:
        return {}
    return dict(conn.execute(select(clusters.c.id, clusters.c.name).where(clusters.c.id.in_(ids))).all())
