"""Alerts: finding changes (opened, reopened, escalated, resolved, suppressed) delivered to outputs
(webhook, Slack, syslog) through an outbox that tails the finding history. See docs/alerts.md."""

from vigil.service.alerts.dispatcher import Dispatcher, Report
from vigil.service.alerts.events import (
    DEFAULT_EVENTS,
    EVENT_KINDS,
    THRESHOLDS,
    AlertEvent,
    classify,
)
from vigil.service.alerts.outputs import OUTPUTS

__all__ = ["DEFAULT_EVENTS", "EVENT_KINDS", "OUTPUTS", "THRESHOLDS", "AlertEvent", "Dispatcher", "Report", "classify"]
