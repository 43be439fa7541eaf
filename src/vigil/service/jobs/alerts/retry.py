"""Bounded retries with exponential backoff around one delivery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vigil.service.jobs.alerts.outputs.base import DeliveryFailed


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # including the first
    base_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts {self.attempts} must be at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError(f"delays must satisfy 0 <= base_delay ({self.base_delay}) <= max_delay ({self.max_delay})")

    def delay(self, failed_attempt: int, retry_after: float | None = None) -> float:
        """Wait after the ``failed_attempt``-th attempt (1-based): base, 2*base, 4*base ... capped;
        a receiver's Retry-After is honoured up to the cap."""
        d = min(self.max_delay, self.base_delay * 2 ** (failed_attempt - 1))
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_delay))
        return d

    def worst_case(self, timeout: float) -> float:
        """Longest one delivery can take: every attempt times out, every backoff is waited."""
        return self.attempts * timeout + sum(self.delay(i) for i in range(1, self.attempts))


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    attempts: int
    error: str | None = None
    interrupted: bool = False  # stopped while waiting to retry: neither delivered nor dead


def deliver(
    send: Callable[[], None],
    policy: RetryPolicy,
    wait: Callable[[float], bool],
    on_failure: Callable[[int, DeliveryFailed], None] | None = None,
) -> Outcome:
    """Call ``send`` until it succeeds, fails permanently, or attempts run out.
    ``wait(seconds)`` sleeps and returns True when the caller is shutting down."""
    error = None
    for attempt in range(1, policy.attempts + 1):
        try:
            send()
            return Outcome(True, attempt)
        except DeliveryFailed as exc:
            error = str(exc)
            if on_failure is not None:
                on_failure(attempt, exc)
            if exc.permanent:
                return Outcome(False, attempt, f"{error} (not retried)")
            if attempt == policy.attempts:
                break
            if wait(policy.delay(attempt, exc.retry_after)):
                return Outcome(False, attempt, error, interrupted=True)
    return Outcome(False, policy.attempts, f"{error} (after {policy.attempts} attempts)")
