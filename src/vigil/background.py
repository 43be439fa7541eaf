"""A pass of work repeated in a daemon thread: what the service's evaluators, matcher, analyzer,
alert dispatcher and the scanner each run in the background.

A failing pass is logged and the next one runs at the next tick, so one bad pass never ends
the work for good. ``wake()`` asks for a pass now; ``stop_event`` is set on ``stop()`` so long
waits inside a pass (retry backoff) can end early. A ``gate`` given to ``start()`` is asked before
each pass and skips it when it says no (a job whose lease another service replica holds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicTask:
    def __init__(self, name: str, work: Callable[[], object], what: str) -> None:
        self.name = name
        self.work = work
        self.what = what  # for the log line when a pass fails, e.g. "integrity pass"
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.gate: Callable[[], bool] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self, interval: float) -> None:
        while not self.stop_event.is_set():
            # Cleared before the pass, never after the wait: a wake() that lands while the pass runs,
            # or just as a wait times out, then gets a pass of its own at once instead of a tick later.
            self._wake.clear()
            try:
                if self.gate is None or self.gate():
                    self.work()
            except Exception:
                log.exception("%s failed", self.what)
            self._wake.wait(interval)

    def start(self, interval: float, gate: Callable[[], bool] | None = None) -> None:
        """Run a pass now and then every ``interval`` seconds (or on ``wake()``) until ``stop()``;
        with a ``gate``, only the passes it allows."""
        if self.running:
            return
        self.gate = gate
        self.stop_event.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,), name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
