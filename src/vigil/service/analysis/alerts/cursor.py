"""An output's place in the finding history: which event ids it has handled (pure).

Event ids come from a sequence, but on PostgreSQL a transaction that took id N can commit after
one that took N+1. Tailing "id > last" would then skip N forever. So the cursor keeps
``position`` (every id up to it is handled) plus the ranges handled above it; a hole below a
handled id is an event not yet committed, or one that never will be (a rolled-back transaction).
The dispatcher gives up on a hole only after a grace period.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cursor:
    position: int = 0
    done: list[tuple[int, int]] = field(default_factory=list)  # sorted, disjoint, each lo > position + 1

    @classmethod
    def from_store(cls, position: int, done: list | None) -> Cursor:
        c = cls(int(position), [])
        for lo, hi in done or []:
            c.mark_range(int(lo), int(hi))
        return c

    def to_store(self) -> list[list[int]]:
        return [[lo, hi] for lo, hi in self.done]

    def is_done(self, event_id: int) -> bool:
        return event_id <= self.position or any(lo <= event_id <= hi for lo, hi in self.done)

    def mark(self, event_id: int) -> None:
        self.mark_range(event_id, event_id)

    def mark_range(self, lo: int, hi: int) -> None:
        if hi < lo:
            raise ValueError(f"range {lo}..{hi} is empty")
        lo = max(lo, self.position + 1)
        if hi < lo:
            return
        merged: list[tuple[int, int]] = []
        for a, b in sorted([*self.done, (lo, hi)]):
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        if merged and merged[0][0] == self.position + 1:
            self.position = merged.pop(0)[1]
        self.done = merged

    def gaps(self) -> list[tuple[int, int]]:
        """Id ranges not handled yet but below a handled id: events still in flight, or never committed."""
        out = []
        low = self.position + 1
        for lo, hi in self.done:
            if lo > low:
                out.append((low, lo - 1))
            low = hi + 1
        return out
