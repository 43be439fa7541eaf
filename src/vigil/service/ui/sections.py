"""Optional sections other parts of the service fill in as their data lands.

A page shows a section when a provider is registered for it and returns data; otherwise it
says what will appear there. Providers are plain functions over a store connection, kept
in these tables so the console never imports analysis code it does not need:

- ``IMAGE_SECTIONS["provenance"](conn, image) -> dict[str, str] | None`` (OCI labels per digest)
- ``IMAGE_SECTIONS["packages"](conn, image) -> list[dict] | None`` (name, version, ecosystem, path)
- ``POLICY_SECTIONS["trust"](conn) -> dict | None`` (the document GET /api/v1/policy/trust serves)
- ``POLICY_SECTIONS["alerts"](conn) -> list[dict] | None`` (alert outputs)
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
