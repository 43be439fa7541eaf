"""Wake the work that waits for new rows the moment they commit, in this replica and in the others.

Two things wait on rows: the runtime analysis (for queued runtime records) and every findings
stream (for new finding_events). Each still looks on its own period, so a wake that is lost costs
one period, never a row. Within one process the writer wakes the waiter directly
(``RuntimeAnalyzer.wake``, ``FindingsSignal.fire``); on PostgreSQL every replica also keeps one
connection that LISTENs on the channels the writers NOTIFY in their transactions
(``store/notify.py``), so the replica that holds the runtime lease analyses a batch another replica
received at once, and a stream sends a finding another replica made at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping

from sqlalchemy import Engine

from vigil.service.store.notify import CHANNELS

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0


class FindingsSignal:
    """Fired (from any thread) after findings changed; awaited by the findings streams.

    A waiter reads ``generation`` before it looks at the store, then waits for it to move past that:
    a fire that lands between its look and its wait is not lost.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def fire(self) -> None:
        with self._lock:
            self.generation += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: its waiter is gone
                pass

    async def wait(self, seen: int, timeout: float) -> bool:
        """Until the generation moved past ``seen`` (True) or ``timeout`` seconds passed (False)."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self.generation != seen:
                return True
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)


class NotificationListener:
    """One PostgreSQL connection LISTENing on ``store.notify.CHANNELS``; each notification calls its
    channel's wake. After a lost connection it reconnects (1 s, doubling to 30 s) and wakes every
    channel once, since notifications sent meanwhile are gone."""

    def __init__(self, engine: Engine, wakes: Mapping[str, Callable[[], None]]) -> None:
        unknown = set(wakes) - set(CHANNELS)
        if unknown:
            raise ValueError(f"no such notification channel: {', '.join(sorted(unknown))}")
        self.engine = engine
        self.wakes = dict(wakes)
        self.listening = threading.Event()  # set while LISTEN is in force (tests wait for it)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _wake_all(self) -> None:
        for wake in self.wakes.values():
            wake()

    def _listen_once(self) -> None:
        # A connection of its own, outside the pool: it stays in LISTEN for the process's life.
        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        conn = self.engine.dialect.connect(*cargs, **cparams)
        try:
            conn.autocommit = True
            for channel in self.wakes:
                conn.execute(f'LISTEN "{channel}"')
            self.listening.set()
            self._wake_all()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=1.0):
                    wake = self.wakes.get(note.channel)
                    if wake is not None:
                        wake()
                    if self._stop.is_set():
                        break
        finally:
            self.listening.clear()
            conn.close()

    def _run(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._stop.is_set():
            try:
                self._listen_once()
                delay = RECONNECT_MIN_S
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning(
                    "notification listener lost its connection; wakes fall back to periods until it is back",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:300], "retry_s": delay},
                )
                self._stop.wait(delay)
                delay = min(RECONNECT_MAX_S, delay * 2)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vigil-notifications", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
