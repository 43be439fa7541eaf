"""Alerts: finding changes (opened, reopened, escalated, resolved, suppressed) delivered to outputs
(webhook, Slack, syslog) through an outbox that tails the finding history. See docs/alerts.md."""

from vigil.service.analysis.alerts.events import (
    DEFAULT_EVENTS,
    EVENT_KINDS,
    THRESHOLDS,
    AlertEvent,
    classify,
)
from vigil.service.jobs.alerts.dispatcher import Dispatcher, Report
from vigil.service.jobs.alerts.outputs import OUTPUTS

__all__ = ["DEFAULT_EVENTS", "EVENT_KINDS", "OUTPUTS", "THRESHOLDS", "AlertEvent", "Dispatcher", "Report", "classify"]
