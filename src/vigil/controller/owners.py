"""Workload resolution through ownerReferences (pure).

A pod's top-level workload is found by following controller references upward:
Pod -> ReplicaSet -> Deployment, Pod -> Job -> CronJob, Pod -> StatefulSet, ... The
walk stops at:

- an object with no controller: it is the top;
- an owner of a kind the controller does not watch (a custom resource such as an Argo
  Rollout): that owner is the top, by kind and name, since it cannot be looked up;
- an owner of a watched kind that is not (or no longer) there, or whose uid differs
  (a new object under the old name): the nearest owner that is there is the top,
  reported as what it is (a ReplicaSet whose Deployment is gone is a ReplicaSet). When
  even the subject's own controller is not there (deleted, or not listed yet), the top
  is that controller as the subject's reference names it (for a pod; an owner object
  whose own owner is absent is its own top): the pod is still not a bare
  pod, and when the owner arrives the subject is resolved again.

Each resolution records which (kind, name) look-ups it made, so that when one of those
owners appears, changes or goes, exactly the affected subjects are resolved again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .kinds import OWNER_KINDS

MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Ref:
    kind: str
    name: str
    uid: str = ""


@dataclass(frozen=True, slots=True)
class OwnerFacts:
    """What resolution needs to know about an owner object."""

    kind: str
    name: str
    uid: str
    controller: Ref | None
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Resolution:
    top_kind: str
    top_name: str
    chain: tuple[tuple[str, str], ...]  # (kind, name) strictly between subject and top, nearest first
    depends_on: frozenset[tuple[str, str]]  # watched-kind (kind, name) looked up in the namespace


def controller_ref(meta: Mapping[str, Any]) -> Ref | None:
    """The reference marked ``controller: true``; failing that, the first one (some CRDs omit the flag)."""
    refs = [r for r in (meta.get("ownerReferences") or []) if isinstance(r, dict) and r.get("kind") and r.get("name")]
    if not refs:
        return None
    chosen = next((r for r in refs if r.get("controller") is True), refs[0])
    return Ref(str(chosen["kind"]), str(chosen["name"]), str(chosen.get("uid") or ""))


def resolve(
    subject_kind: str,
    subject_name: str,
    first: Ref | None,
    lookup: Mapping[tuple[str, str], OwnerFacts],
) -> Resolution:
    """Resolve a subject (a pod, or an owner object itself) whose controller reference is ``first``.

    ``lookup`` maps (kind, name) to the owner objects present in the subject's namespace.
    """
    if first is None:
        return Resolution(subject_kind, subject_name, (), frozenset())
    chain: list[tuple[str, str]] = []
    depends: set[tuple[str, str]] = set()
    ref = first
    seen = {(subject_kind, subject_name)}
    while True:
        key = (ref.kind, ref.name)
        if ref.kind not in OWNER_KINDS:
            return Resolution(ref.kind, ref.name, tuple(chain), frozenset(depends))
        depends.add(key)
        facts = lookup.get(key)
        if facts is None or (ref.uid and facts.uid and ref.uid != facts.uid):
            if chain:
                top = chain.pop()
                return Resolution(top[0], top[1], tuple(chain), frozenset(depends))
            if subject_kind in OWNER_KINDS:  # an owner object is itself the nearest present owner
                return Resolution(subject_kind, subject_name, (), frozenset(depends))
            return Resolution(ref.kind, ref.name, (), frozenset(depends))
        if facts.controller is None or key in seen or len(chain) >= MAX_DEPTH:
            return Resolution(ref.kind, ref.name, tuple(chain), frozenset(depends))
        seen.add(key)
        chain.append(key)
        ref = facts.controller
