"""What a signature check proves about one digest: verified, invalid, absent or unknown."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class Provenance:
    """The build facts a user wants from a SLSA provenance predicate (v0.2 or v1)."""

    builder_id: str | None = None
    source_repository: str | None = None
    source_revision: str | None = None
    build_trigger: str | None = None

    def as_doc(self) -> dict[str, str | None]:
        return {
            "builder_id": self.builder_id,
            "source_repository": self.source_repository,
            "source_revision": self.source_revision,
            "build_trigger": self.build_trigger,
        }


@dataclass(frozen=True)
class Verified:
    """A signature verified; `by` names the key (its name, or `sha256:` key id) or the identity."""

    by: str
    kind: Literal["verified"] = "verified"
    identity: str | None = None
    issuer: str | None = None
    docker_reference: str | None = None
    signed_at: datetime | None = None
    predicate_type: str | None = None
    provenance: Provenance | None = None

    def line(self) -> str:
        return f"verified by {self.by}"


@dataclass(frozen=True)
class Invalid:
    """A signature is present and fails; `why` names the failing check."""

    why: str
    kind: Literal["invalid"] = "invalid"

    def line(self) -> str:
        return f"invalid: {self.why}"


@dataclass(frozen=True)
class Absent:
    """Nothing that claims to sign the digest."""

    kind: Literal["absent"] = "absent"

    def line(self) -> str:
        return "absent"


@dataclass(frozen=True)
class Unknown:
    """The check could not be made (registry unreachable, unsupported format): never a violation."""

    why: str
    kind: Literal["unknown"] = "unknown"

    def line(self) -> str:
        return f"unknown: {self.why}"


Outcome = Verified | Invalid | Absent | Unknown


def combine(outcomes: Iterable[Outcome]) -> Outcome:
    """Any verified signature verifies the digest (named by every key that verified, in order); else
    the first invalid one makes it invalid; else unknown; else absent."""
    parts = list(outcomes)
    verified = [o for o in parts if isinstance(o, Verified)]
    if verified:
        names: list[str] = []
        for o in verified:
            if o.by not in names:
                names.append(o.by)
        first = verified[0]
        return Verified(
            by=", ".join(names),
            identity=first.identity,
            issuer=first.issuer,
            docker_reference=first.docker_reference,
            signed_at=first.signed_at,
            predicate_type=first.predicate_type,
            provenance=first.provenance,
        )
    for p in parts:
        if isinstance(p, Invalid):
            return p
    for p in parts:
        if isinstance(p, Unknown):
            return p
    return Absent()
