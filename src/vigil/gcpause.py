"""Pausing the cyclic garbage collector around large batch work.

Both measured hot paths allocate many acyclic objects that the collector walks for
nothing: validating a 10,000-pod inventory snapshot (1.1 s with the collector, 0.45 s
without) and the first lookups in a loaded advisory index, whose full collections
walk its few million objects (10,000 cold lookups: 2.4 s of CPU with, 1.0 s without).
The objects hold no reference cycles, so a pause frees nothing later than it would
have been. Reference-counted, because requests and scans overlap in threads. It lives
at the package root because libraries (intel) and units (service) both use it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = True


@contextmanager
def paused_gc() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
