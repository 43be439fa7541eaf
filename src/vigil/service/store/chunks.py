"""Long IN-lists and bulk inserts go to the database in chunks.

A statement binds one parameter per value: SQLite refuses more than 32,766 of them (999 in older
builds) and PostgreSQL more than 65,535, and very long IN-lists plan slowly on both. Chunks of a few
hundred values stay well inside every limit at no measurable cost per round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

IN_LIST_SIZE = 500


def chunks(items: Sequence[T], size: int = IN_LIST_SIZE) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``, in order; nothing for an empty sequence."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
