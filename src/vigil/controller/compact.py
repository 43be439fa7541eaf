"""Wire models the controller keeps for the life of the process, made small (pure).

The controller holds every pod of the cluster as a validated wire model. Measured at 10,000 real pods,
a pod was 11.3 KB of Python objects for 1.7 KB of JSON: each model instance carries its own set of the
field names it was given (728 B for ten names), and every pod its own copies of the same image
references, namespaces, node names and label keys. Here the models are rebuilt, after validation, with
``model_construct`` (pydantic's documented path for validated data) so that models of one type given
the same fields share one fields-set, their strings are interned, and the few distinct security
summaries are shared; the values, equality and JSON are unchanged.
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

# One fields-set per (model type, field names): bounded by the wire schema, not by the cluster.
_FIELDS_SETS: dict[tuple[type[BaseModel], frozenset[str]], set[str]] = {}
# Whole frozen models shared by value, for the types whose distinct values are few (security facts).
_SHARED: dict[tuple[Any, ...], BaseModel] = {}
MAX_SHARED = 4096  # past this many distinct values, models are compacted but no longer shared


def _value(v: Any, share: tuple[type[BaseModel], ...]) -> Any:
    if isinstance(v, str):
        return sys.intern(v)
    if isinstance(v, BaseModel):
        return compact(v, share)
    if isinstance(v, list):
        return [_value(x, share) for x in v]
    if isinstance(v, dict):
        return {_value(k, share): _value(x, share) for k, x in v.items()}
    return v


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, BaseModel):
        return (type(v), tuple((k, _hashable(x)) for k, x in v.__dict__.items()))
    return v


def compact(model: M, share: tuple[type[BaseModel], ...] = ()) -> M:
    """An equal model (same values, same fields set) that costs less to keep; ``share`` names the types
    whose equal instances become one object (they must be frozen)."""
    cls = type(model)
    given = model.model_fields_set
    key = (cls, frozenset(given))
    fields_set = _FIELDS_SETS.get(key)
    if fields_set is None:
        fields_set = _FIELDS_SETS[key] = set(given)
    values = {k: _value(v, share) for k, v in model.__dict__.items()}
    if cls in share:
        ident = (cls, _hashable(values))
        hit = _SHARED.get(ident)
        if hit is not None:
            return hit  # type: ignore[return-value]
        made = cls.model_construct(fields_set, **values)
        if len(_SHARED) < MAX_SHARED:
            _SHARED[ident] = made
        return made
    return cls.model_construct(fields_set, **values)
