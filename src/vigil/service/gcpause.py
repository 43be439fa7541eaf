"""Pausing the cyclic garbage collector around large batch work.

Validating a 10,000-pod snapshot allocates a few hundred thousand objects, and
the collector's passes over them took more than half the time (measured:
1.1 s with, 0.45 s without). The objects are acyclic and short-lived, so the
pause loses nothing; it is reference-counted because requests overlap in threads.
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
