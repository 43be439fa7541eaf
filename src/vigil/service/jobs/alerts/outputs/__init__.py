"""Alert outputs, registered in one table: the API, the CLI and the dispatcher look kinds up here."""

from __future__ import annotations

from vigil.service.jobs.alerts.outputs.base import DeliveryFailed, Output, OutputRequest
from vigil.service.jobs.alerts.outputs.slack import SlackOutput
from vigil.service.jobs.alerts.outputs.syslog import SyslogOutput
from vigil.service.jobs.alerts.outputs.webhook import WebhookOutput

OUTPUTS: dict[str, type[Output]] = {cls.kind: cls for cls in (WebhookOutput, SlackOutput, SyslogOutput)}

__all__ = ["OUTPUTS", "DeliveryFailed", "Output", "OutputRequest"]
