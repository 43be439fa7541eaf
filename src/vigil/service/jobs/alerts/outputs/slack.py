"""Slack-compatible incoming webhook: text plus Block Kit blocks (Mattermost and others accept it too).

The URL's path is the credential (hooks.slack.com/services/T.../B.../<token>), so the whole URL is a secret.
"""

from __future__ import annotations

from typing import Literal

import orjson

from vigil.service.analysis.alerts.events import AlertEvent, headline
from vigil.service.analysis.alerts.redact import mask_url
from vigil.service.jobs.alerts.outputs import http
from vigil.service.jobs.alerts.outputs.base import Output

EMOJI = {"critical": ":red_circle:", "high": ":large_orange_circle:", "medium": ":large_yellow_circle:"}
RESOLVED_EMOJI = ":white_check_mark:"


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters; a finding's subject is untrusted text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _field(label: str, value: str | None) -> dict:
    return {"type": "mrkdwn", "text": f"*{label}*\n{escape(value) if value else '-'}"}


def slack_message(ev: AlertEvent) -> dict:
    f = ev.finding
    mark = RESOLVED_EMOJI if ev.kind in ("resolved", "suppressed") else EMOJI.get(ev.severity, ":white_circle:")
    severity = ev.severity + (
        f" (was {ev.previous_severity})" if ev.kind == "escalated" and ev.previous_severity else ""
    )
    subject = f.subject if len(f.subject) <= 2000 else f.subject[:2000] + "…"
    return {
        "text": escape(headline(ev)),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{mark} *Finding {ev.kind}: {escape(f.type)}*\n`{escape(subject)}`",
                },
            },
            {
                "type": "section",
                "fields": [
                    _field("Severity", severity),
                    _field("Cluster", f.cluster_name or f.cluster_id),
                    _field("Namespace", f.namespace),
                    _field("Workload", f.workload),
                    _field("Image", f.image),
                    _field("Finding", f"#{f.id}"),
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": escape(f"event {ev.event_id} · {ev.reason or ev.kind} · by {ev.actor or 'vigil'}"),
                    }
                ],
            },
        ],
    }


class SlackRequest(http.HttpOutputRequest):
    kind: Literal["slack"]


class SlackOutput(Output):
    kind = "slack"
    summary = "Slack-compatible incoming webhook (text + blocks)"
    Request = SlackRequest
    secret_fields = ("url",)

    def render(self, event: AlertEvent) -> bytes:
        return orjson.dumps(slack_message(event))

    def send(self, payload: bytes, event: AlertEvent) -> None:
        http.post(self.secrets["url"], payload, {}, self.timeout, self.destinations)

    @classmethod
    def destination(cls, config: dict, secrets: dict) -> tuple[str, int]:
        return http.url_destination(secrets["url"])

    def describe(self) -> dict:
        return {"url": mask_url(self.secrets["url"], keep_path=False), **self.config}
