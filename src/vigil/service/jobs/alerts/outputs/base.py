"""What every alert output is: settings it accepts, a pure render, and a send that may fail."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vigil.service.analysis.alerts.destinations import DestinationPolicy
from vigil.service.analysis.alerts.events import (
    DEFAULT_EVENTS,
    EVENT_KINDS,
    THRESHOLDS,
    AlertEvent,
)

# Literals built from the runtime tuples, so the names are spelt once: pydantic validates against them,
# mypy cannot read a Literal of a variable.
ThresholdName = Literal[THRESHOLDS]  # type: ignore[valid-type]
EventName = Literal[EVENT_KINDS]  # type: ignore[valid-type]


class DeliveryFailed(Exception):
    """A send did not reach the receiver. ``permanent`` means retrying cannot help (e.g. HTTP 404)."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class OutputRequest(BaseModel):
    """Fields every output has; each kind extends this with its own."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    kind: str
    threshold: ThresholdName = "medium"
    events: list[EventName] = Field(default_factory=lambda: list(DEFAULT_EVENTS), min_length=1)

    @field_validator("events")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return sorted(set(v), key=EVENT_KINDS.index)


class Output(ABC):
    kind: ClassVar[str]
    summary: ClassVar[str]
    Request: ClassVar[type[OutputRequest]]
    # Settings kept apart from the rest: never logged, never shown by the API.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    # The request field naming where it sends, for errors about the destination.
    destination_field: ClassVar[str] = "url"

    def __init__(
        self,
        config: dict[str, Any],
        secrets: dict[str, Any],
        timeout: float = 10.0,
        destinations: DestinationPolicy | None = None,
    ) -> None:
        self.config = config
        self.secrets = secrets
        self.timeout = timeout
        self.destinations = destinations or DestinationPolicy()

    @classmethod
    @abstractmethod
    def destination(cls, config: dict[str, Any], secrets: dict[str, Any]) -> tuple[str, int]:
        """(host, port) this output sends to, for the destination policy."""

    @classmethod
    def split(cls, request: OutputRequest) -> tuple[dict, dict, dict]:
        """(config, secrets, shown_once): what to store in the open, what to keep secret, and
        what the creator must see once (a generated signing secret)."""
        fields = request.model_dump(exclude={"name", "kind", "threshold", "events"})
        secrets = {k: fields.pop(k) for k in cls.secret_fields if fields.get(k) is not None}
        return fields, secrets, {}

    def secret_values(self) -> list[str]:
        return [v for v in self.secrets.values() if isinstance(v, str) and v]

    @abstractmethod
    def render(self, event: AlertEvent) -> bytes:
        """The bytes the receiver gets for ``event`` (pure)."""

    @abstractmethod
    def send(self, payload: bytes, event: AlertEvent) -> None:
        """Deliver ``payload``; raise DeliveryFailed when it did not arrive."""

    @abstractmethod
    def describe(self) -> dict:
        """The settings as the API shows them, secrets masked."""

    # An optional hook, not abstract: only outputs that hold a connection have something to release.
    def close(self) -> None:  # noqa: B027
        pass
