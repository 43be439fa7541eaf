"""PeriodicTask: a wake() asks for a pass now, also while a pass is running."""

from __future__ import annotations

import threading
import time

from vigil.background import PeriodicTask


def test_a_wake_during_a_pass_runs_another_pass_at_once_not_a_tick_later() -> None:
    passes: list[float] = []
    first_running = threading.Event()
    release_first = threading.Event()
    second = threading.Event()

    def work() -> None:
        passes.append(time.monotonic())
        if len(passes) == 1:
            first_running.set()
            release_first.wait(10)
        elif len(passes) == 2:
            second.set()

    task = PeriodicTask("test-wake", work, "test pass")
    task.start(interval=60.0)
    try:
        assert first_running.wait(10)
        task.wake()  # lands while the first pass runs
        woke_at = time.monotonic()
        release_first.set()
        assert second.wait(5), "the wake during the pass was lost: no second pass within 5 s (the tick is 60 s)"
        assert passes[1] - woke_at < 5
        assert len(passes) == 2
    finally:
        task.stop()


def test_a_gate_that_says_no_skips_the_pass_and_the_next_wake_asks_again() -> None:
    asked: list[bool] = []
    ran = threading.Event()
    answers = iter([False, True])

    def gate() -> bool:
        answer = next(answers, True)
        asked.append(answer)
        return answer

    task = PeriodicTask("test-gate", ran.set, "test pass")
    task.start(interval=60.0, gate=gate)
    try:
        deadline = time.monotonic() + 5
        while not asked and time.monotonic() < deadline:
            time.sleep(0.01)
        assert asked == [False] and not ran.is_set()
        task.wake()
        assert ran.wait(5)
        assert asked == [False, True]
    finally:
        task.stop()
