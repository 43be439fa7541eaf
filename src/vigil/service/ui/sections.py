"""Sections of the image and settings pages, read through replaceable providers.

Providers are plain functions over a store connection, kept in these tables so a part of the
service can supply its own; ``providers.register_built_ins`` fills every entry nobody else
registered with the console's readers of the real stores. A provider that raises does not take
the page down: its section says it could not be read.

- ``IMAGE_SECTIONS["provenance"](conn, image) -> dict | None`` (source, revision, created,
  authors, version, labels of the digest; ``store.integrity.provenance_for``)
- ``IMAGE_SECTIONS["integrity"](conn, image) -> dict | None`` (``store.integrity.summaries``)
- ``POLICY_SECTIONS["trust"](conn) -> dict`` (rules as ``store.policy.list_rules``, revision, clusters)
- ``POLICY_SECTIONS["alerts"](conn) -> list[dict]`` (alert outputs, settings masked by their kind)

Packages and vulnerabilities are paged, so the image page reads them from ``store.contents``
itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection

log = logging.getLogger("vigil.console")

IMAGE_SECTIONS: dict[str, Callable[[Connection, dict], object]] = {}
POLICY_SECTIONS: dict[str, Callable[[Connection], object]] = {}


def register_image_section(name: str, provider: Callable[[Connection, dict], object]) -> None:
    IMAGE_SECTIONS[name] = provider


def register_policy_section(name: str, provider: Callable[[Connection], object]) -> None:
    POLICY_SECTIONS[name] = provider


def _call(table: dict, name: str, *args):
    provider = table.get(name)
    if provider is None:
        return None
    try:
        return provider(*args)
    except Exception:
        # A broken provider must not take the page down; its section says it is unavailable.
        log.exception("console section provider failed", extra={"section": name})
        return {"error": f"the {name} section could not be read; see the service log"}


def image_section(name: str, conn: Connection, image: dict):
    return _call(IMAGE_SECTIONS, name, conn, image)


def policy_section(name: str, conn: Connection):
    return _call(POLICY_SECTIONS, name, conn)
