"""Caches: content by digest (immutable, so kept until evicted by size) and tag -> digest with a TTL."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRUCache(Generic[V]):
    """Bounded by entry count and by total size; least recently used goes first."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("LRUCache bounds must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)  # recently used: last to be evicted
            return self._items[key][0]

    def put(self, key: Hashable, value: V, size: int = 1) -> None:
        if size > self.max_bytes:
            return  # larger than the whole cache: keeping it would evict everything else
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, evicted_size) = self._items.popitem(last=False)
                self._bytes -= evicted_size

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


class TTLCache(Generic[V]):
    """Entries expire ``ttl`` seconds after they were stored; bounded by entry count."""

    def __init__(self, ttl: float, max_entries: int = 65536, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 0:
            raise ValueError("TTL must not be negative")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._items: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[1] <= self._clock():
                del self._items[key]
                return None
            return item[0]

    def put(self, key: Hashable, value: V) -> None:
        if self.ttl == 0:
            return
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (value, self._clock() + self.ttl)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def invalidate(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)

    def invalidate_where(self, predicate: Callable[[Hashable, V], bool]) -> int:
        with self._lock:
            doomed = [k for k, (v, _) in self._items.items() if predicate(k, v)]
            for key in doomed:
                del self._items[key]
            return len(doomed)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
