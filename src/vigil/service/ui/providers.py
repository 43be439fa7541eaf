"""The console's own providers for the optional sections, reading the stores that now exist.

Registered by ``install`` only where no other part registered one, so a part of the service can
still replace a section with its own provider.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from vigil.service.jobs.alerts.outputs import OUTPUTS
from vigil.service.store import alerts as alert_store
from vigil.service.store import policy as policy_store
from vigil.service.store.integrity import summaries as integrity_summaries
from vigil.service.store.schema import clusters
from vigil.service.store.tokens import as_utc
from vigil.service.ui import sections


def trust_section(conn: Connection) -> dict:
    """The stored trust policy: its rules (global first, then per cluster), its revision, and the
    clusters a new rule can be scoped to."""
    rules = policy_store.list_rules(conn)
    for r in rules:
        r["created_at"] = as_utc(r["created_at"]).isoformat() if r["created_at"] else None
    rules.sort(key=lambda r: (r["cluster"] is not None, r["cluster"] or "", r["kind"] != "trusted", r["pattern"], r["mirror"] or ""))
    return {
        "rules": rules,
        "revision": policy_store.load_policy(conn).revision,
        "clusters": [name for (name,) in conn.execute(select(clusters.c.name).order_by(clusters.c.name))],
    }


def alerts_section(conn: Connection) -> list[dict]:
    """Alert outputs as the API lists them: settings through the output kind's own masking."""
    positions, dead = alert_store.positions(conn), alert_store.dead_letter_counts(conn)
    out = []
    for o in alert_store.list_outputs(conn):
        cls = OUTPUTS.get(o.kind)
        out.append(
            {
                "id": o.id,
                "name": o.name,
                "kind": o.kind,
                "threshold": o.threshold,
                "events": list(o.events),
                # Never the raw config: secrets are only ever shown masked, by the kind that knows them.
                "settings": cls(o.config, o.secrets).describe() if cls else {"error": f"unknown output kind {o.kind!r}"},
                "created_at": o.created_at.isoformat() if o.created_at else None,
                "created_by": o.created_by,
                "cursor": positions.get(o.id),
                "dead_letters": dead.get(o.id, 0),
            }
        )
    return out


def integrity_section(conn: Connection, image: dict) -> dict | None:
    """The image's integrity verdict (worst over clusters, and each cluster's) and its digest's provenance."""
    return integrity_summaries(conn, [image["id"]]).get(image["id"])


def provenance_section(conn: Connection, image: dict) -> dict | None:
    summary = integrity_summaries(conn, [image["id"]]).get(image["id"]) or {}
    return summary.get("provenance")


BUILT_IN_POLICY = {"trust": trust_section, "alerts": alerts_section}
BUILT_IN_IMAGE = {"provenance": provenance_section, "integrity": integrity_section}


def register_built_ins() -> None:
    for name, fn in BUILT_IN_POLICY.items():
        sections.POLICY_SECTIONS.setdefault(name, fn)
    for name, section in BUILT_IN_IMAGE.items():
        sections.IMAGE_SECTIONS.setdefault(name, section)
