"""Global search: one query text matched against images, workloads, pods, packages, advisories and
findings, each kind counted and capped, for the API's search and the console's search box.

A match is a case-insensitive substring (image reference, workload, pod, package name, finding
subject), a digest prefix (``sha256:…`` or six or more bare hex digits), or an advisory id matched
whole (its id, the id findings are keyed by, its other advisory ids or aliases). User text reaches
LIKE only escaped, so ``%`` and ``_`` match themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from sqlalchemy import ColumnElement, Connection, Select, Text, cast, func, literal, or_, select

from vigil.service.store.schema import (
    clusters,
    findings,
    image_packages,
    image_vulnerabilities,
    images,
    pods,
    workloads,
)
from vigil.service.store.views.common import image_ref

MAX_QUERY = 200
MIN_DIGEST_HEX = 6
DEFAULT_PER_KIND = 10
MAX_PER_KIND = 100
KINDS = ("images", "workloads", "pods", "packages", "advisories", "findings")

_HEX = re.compile(r"[0-9a-f]+")
_ESCAPE = "\\"


class BadQuery(ValueError):
    """A search text the service will not run: the message names the rule."""


@dataclass(frozen=True)
class Group:
    """One kind's matches: the first ``items`` in a stable order, and how many match in all."""

    kind: str
    items: list[dict]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.items)


@dataclass(frozen=True)
class Results:
    query: str
    groups: list[Group] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(g.total for g in self.groups)


def checked_query(raw: str | None) -> str:
    """The search text, trimmed; refused when empty or longer than ``MAX_QUERY`` characters."""
    text = (raw or "").strip()
    if not text:
        raise BadQuery("q: give some text to search for")
    if len(text) > MAX_QUERY:
        raise BadQuery(f"q: at most {MAX_QUERY} characters (this one has {len(text)})")
    return text


def _like_escaped(text: str) -> str:
    return text.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")


def _contains(expr, text: str) -> ColumnElement[bool]:
    return func.lower(expr).like("%" + _like_escaped(text.lower()) + "%", escape=_ESCAPE)


def digest_prefix(text: str) -> str | None:
    """The digest prefix ``text`` names: ``sha256:`` and hex, or at least ``MIN_DIGEST_HEX`` bare hex digits."""
    t = text.lower()
    algo, sep, hexpart = t.partition(":")
    if sep and algo == "sha256" and (hexpart == "" or _HEX.fullmatch(hexpart)):
        return t
    if not sep and len(t) >= MIN_DIGEST_HEX and _HEX.fullmatch(t):
        return "sha256:" + t
    return None


def _image_reference():
    i = images.c
    return i.registry + literal("/") + i.repository + literal(":") + i.tag


def _image_conditions(text: str) -> ColumnElement[bool]:
    cond = [_contains(_image_reference(), text)]
    prefix = digest_prefix(text)
    if prefix is not None:
        cond.append(images.c.digest.like(_like_escaped(prefix) + "%", escape=_ESCAPE))
    return or_(*cond)


def _image(r) -> dict:
    return {
        "id": r.id,
        "ref": image_ref(r.registry, r.repository, r.tag, r.digest),
        "digest": r.digest or None,
        "url": f"/images/{r.id}",
    }


def _workload_url(cluster_id: str, namespace: str, kind: str, name: str) -> str:
    return "/workloads/" + "/".join(quote(p, safe="") for p in (cluster_id, namespace, kind, name))


def _images(conn: Connection, text: str, limit: int) -> Group:
    i = images.c
    stmt = select(images).where(_image_conditions(text))
    rows = conn.execute(stmt.order_by(i.registry, i.repository, i.tag, i.digest, i.id).limit(limit)).all()
    return Group("images", [_image(r) for r in rows], _count(conn, stmt))


def _workloads(conn: Connection, text: str, limit: int) -> Group:
    w = workloads.c
    stmt = (
        select(workloads, clusters.c.name.label("cluster_name"))
        .join(clusters, clusters.c.id == w.cluster_id)
        .where(_contains(w.name, text))
    )
    rows = conn.execute(stmt.order_by(clusters.c.name, w.cluster_id, w.namespace, w.kind, w.name).limit(limit)).all()
    items = [
        {
            "cluster_id": r.cluster_id,
            "cluster_name": r.cluster_name,
            "namespace": r.namespace,
            "kind": r.kind,
            "name": r.name,
            "url": _workload_url(r.cluster_id, r.namespace, r.kind, r.name),
        }
        for r in rows
    ]
    return Group("workloads", items, _count(conn, stmt))


def _pods(conn: Connection, text: str, limit: int) -> Group:
    p = pods.c
    stmt = (
        select(pods, clusters.c.name.label("cluster_name"))
        .join(clusters, clusters.c.id == p.cluster_id)
        .where(_contains(p.name, text))
    )
    rows = conn.execute(stmt.order_by(clusters.c.name, p.cluster_id, p.namespace, p.name, p.uid).limit(limit)).all()
    items = [
        {
            "cluster_id": r.cluster_id,
            "cluster_name": r.cluster_name,
            "namespace": r.namespace,
            "name": r.name,
            "uid": r.uid,
            "phase": r.phase,
            "workload": {"kind": r.workload_kind, "name": r.workload_name},
            # A pod has no page of its own: its workload's page lists it.
            "url": _workload_url(r.cluster_id, r.namespace, r.workload_kind, r.workload_name),
        }
        for r in rows
    ]
    return Group("pods", items, _count(conn, stmt))


def _packages(conn: Connection, text: str, limit: int) -> Group:
    pk, i = image_packages.c, images.c
    stmt = (
        select(pk.type, pk.name, pk.version, i.id, i.registry, i.repository, i.tag, i.digest)
        .join(images, i.digest == pk.digest)
        .where(_contains(pk.name, text))
        .distinct()
    )
    order = (pk.name, pk.version, pk.type, i.registry, i.repository, i.tag, i.id)
    rows = conn.execute(stmt.order_by(*order).limit(limit)).all()
    items = [
        {
            "package": {"type": r.type, "name": r.name, "version": r.version},
            "image": _image(r),
            "url": f"/images/{r.id}",
        }
        for r in rows
    ]
    return Group("packages", items, _count(conn, stmt))


def _json_holds(column, text: str) -> ColumnElement[bool]:
    """A JSON list column (as text, on either database) holds the string ``text``."""
    return func.lower(cast(column, Text)).like('%"' + _like_escaped(text.lower()) + '"%', escape=_ESCAPE)


def _advisories(conn: Connection, text: str, limit: int) -> Group:
    v, pk, i = image_vulnerabilities.c, image_packages.c, images.c
    t = text.lower()
    stmt = (
        select(v.vuln_id, v.severity, pk.type, pk.name, pk.version, i.id, i.registry, i.repository, i.tag, i.digest)
        .join(image_packages, pk.id == v.package_id)
        .join(images, i.digest == v.digest)
        .where(
            or_(
                func.lower(v.vuln_id) == t,
                func.lower(v.key_id) == t,
                _json_holds(v.advisory_ids, text),
                _json_holds(v.aliases, text),
            )
        )
        .distinct()
    )
    order = (v.vuln_id, i.registry, i.repository, i.tag, i.id, pk.name, pk.version, pk.type)
    rows = conn.execute(stmt.order_by(*order).limit(limit)).all()
    items = [
        {
            "advisory": r.vuln_id,
            "severity": r.severity,
            "package": {"type": r.type, "name": r.name, "version": r.version},
            "image": _image(r),
            "url": f"/images/{r.id}",
        }
        for r in rows
    ]
    return Group("advisories", items, _count(conn, stmt))


def _findings(conn: Connection, text: str, limit: int) -> Group:
    f = findings.c
    stmt = select(
        f.id, f.type, f.severity, f.status, f.subject, f.cluster_id, clusters.c.name.label("cluster_name")
    ).select_from(findings.outerjoin(clusters, clusters.c.id == f.cluster_id))
    stmt = stmt.where(_contains(f.subject, text))
    rows = conn.execute(stmt.order_by(f.id).limit(limit)).all()
    items = [
        {
            "id": r.id,
            "type": r.type,
            "severity": r.severity,
            "status": r.status,
            "subject": r.subject,
            "cluster_id": r.cluster_id,
            "cluster_name": r.cluster_name,
            "url": f"/findings/{r.id}",
        }
        for r in rows
    ]
    return Group("findings", items, _count(conn, stmt))


def _count(conn: Connection, stmt: Select) -> int:
    return conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()


_SEARCHES: dict[str, Callable[[Connection, str, int], Group]] = {
    "images": _images,
    "workloads": _workloads,
    "pods": _pods,
    "packages": _packages,
    "advisories": _advisories,
    "findings": _findings,
}


def search(conn: Connection, raw: str | None, per_kind: int = DEFAULT_PER_KIND) -> Results:
    """Every kind's matches for ``raw`` (checked by ``checked_query``), at most ``per_kind`` of each."""
    text = checked_query(raw)
    if not 1 <= per_kind <= MAX_PER_KIND:
        raise BadQuery(f"limit: from 1 to {MAX_PER_KIND} results of each kind")
    return Results(text, [_SEARCHES[kind](conn, text, per_kind) for kind in KINDS])
