"""What every wire message shares: strict models, batch identity, and the name rules of Kubernetes."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from typing import Annotated, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

WIRE_VERSION: Final = 1

# Kubernetes object names: DNS subdomains (pods, workloads, nodes) are at most 253
# characters; namespaces are DNS labels (63). Kept permissive on case for node
# names, which some providers report in mixed case.
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z", re.IGNORECASE)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
CONTAINER_ID = re.compile(r"[a-z][a-z0-9+.-]*://[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")
KIND = re.compile(r"[A-Z][A-Za-z0-9]{0,62}\Z")

ObjectName = Annotated[str, Field(min_length=1, max_length=253)]
MAX_ITEMS = 200_000
# Every integer is stored as a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT): a larger
# one is refused here (422) rather than failing in the store.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
# Kubernetes' own int32 fields (restartCount; runAsUser, which its API validates to 0..2^31-1).
INT32_MAX: Final = 2**31 - 1


def check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"{value!r} is not a valid {what}")
    return value


def check_container_id(value: str | None) -> str | None:
    """None (not started yet) or a runtime-prefixed id such as ``containerd://<64 hex>``."""
    if value is not None:
        check(CONTAINER_ID, value, "container id (runtime://id)")
    return value


class WireModel(BaseModel):
    # Unknown fields are refused so that a misspelt field is an error, not a silent drop.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Batch(WireModel):
    wire_version: Literal[1] = WIRE_VERSION
    batch_id: str = Field(
        description="Sender-chosen id; a batch id already applied is acknowledged and not applied again"
    )
    cluster_id: str = Field(min_length=1, max_length=64)

    @field_validator("batch_id")
    @classmethod
    def _bid(cls, v: str) -> str:
        return check(BATCH_ID, v, "batch id (1-128 of [A-Za-z0-9_.:-])")


T = TypeVar("T")


def require_unique(items: Iterable[T], key: Callable[[T], Hashable], what: str) -> None:
    seen: set[Hashable] = set()
    for item in items:
        k = key(item)
        if k in seen:
            raise ValueError(f"{what} {k} appears twice in the batch")
        seen.add(k)
