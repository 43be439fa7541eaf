"""Alert outputs as the API and the console show them: settings only as the output's kind masks them."""

from __future__ import annotations

from sqlalchemy import Connection

from vigil.service.jobs.alerts.outputs import OUTPUTS
from vigil.service.store import alerts as store


def output_view(o: store.OutputRow, position: int | None, dead_letters: int) -> dict:
    cls = OUTPUTS.get(o.kind)
    return {
        "id": o.id,
        "name": o.name,
        "kind": o.kind,
        "threshold": o.threshold,
        "events": list(o.events),
        # Never the raw config: secrets are only ever shown masked, by the kind that knows them.
        "settings": cls(o.config, o.secrets).describe() if cls else {},
        "created_at": o.created_at.isoformat(),
        "created_by": o.created_by,
        "cursor": position,
        "dead_letters": dead_letters,
    }


def list_output_views(conn: Connection) -> list[dict]:
    """Every alert output with its delivery position and dead letters, by id."""
    positions, dead = store.positions(conn), store.dead_letter_counts(conn)
    return [output_view(o, positions.get(o.id), dead.get(o.id, 0)) for o in store.list_outputs(conn)]


def get_output_view(conn: Connection, output_id: int) -> dict | None:
    o = store.get_output(conn, output_id)
    if o is None:
        return None
    return output_view(o, store.positions(conn).get(o.id), store.dead_letter_counts(conn).get(o.id, 0))
