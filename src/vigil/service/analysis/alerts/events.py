"""Which finding changes are alerts, and whether an output wants them (pure: plain data in, answers out).

A finding's history (``finding_events``) records every change of status or severity. An alert
is one of those rows classified into an event kind that users act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vigil.clock import iso
from vigil.model.findings import RATED_SEVERITIES, FindingStatus, Severity
from vigil.model.findings import severity_rank as _rank

# opened: a new finding; reopened: a resolved (or suppressed) finding is open again;
# escalated: an open finding's severity rose; resolved / suppressed: it closed.
EVENT_KINDS = ("opened", "reopened", "escalated", "resolved", "suppressed")
# Suppression is a person's decision, not news about the cluster: opt-in per output.
DEFAULT_EVENTS = ("opened", "reopened", "escalated", "resolved")
THRESHOLDS = tuple(s.value for s in RATED_SEVERITIES)


def severity_rank(severity: str) -> int:
    """0 is the most severe. Info, unknown (an advisory without a score) and a severity Vigil does
    not know rank with low, so a "low" output gets everything rather than dropping some."""
    return Severity.CRITICAL.rank - max(_rank(severity), Severity.LOW.rank)


def classify(from_status: str | None, to_status: str, severity: str, previous_severity: str | None) -> str | None:
    """The event kind of one history row, or None when it is not alert-worthy (a severity drop)."""
    closed = (FindingStatus.RESOLVED, FindingStatus.SUPPRESSED)
    if to_status == FindingStatus.OPEN:
        if from_status is None:
            return "opened"
        if from_status in closed:
            return "reopened"
        if from_status == FindingStatus.OPEN and previous_severity is not None:
            return "escalated" if severity_rank(severity) < severity_rank(previous_severity) else None
        return None
    if to_status in closed and from_status != to_status:
        return FindingStatus(to_status).value
    return None


def meets_threshold(severity: str, threshold: str) -> bool:
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold {threshold!r} is not one of {', '.join(THRESHOLDS)}")
    return severity_rank(severity) <= severity_rank(threshold)


@dataclass(frozen=True)
class FindingView:
    """The finding as an alert shows it (status and severity are the event's, the rest is current)."""

    id: int
    type: str
    subject: str
    cluster_id: str | None = None
    cluster_name: str | None = None
    namespace: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    image: str | None = None
    evidence: dict = field(default_factory=dict)
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None

    @property
    def workload(self) -> str | None:
        if not self.workload_name:
            return None
        return f"{self.workload_kind}/{self.workload_name}" if self.workload_kind else self.workload_name


@dataclass(frozen=True)
class AlertEvent:
    event_id: int  # finding_events.id: unique and stable, so receivers can deduplicate
    kind: str  # one of EVENT_KINDS, or "test"
    at: datetime
    severity: str
    status: str
    finding: FindingView
    previous_severity: str | None = None
    reason: str | None = None
    actor: str | None = None


def event_document(ev: AlertEvent) -> dict:
    """The JSON form of an alert: the webhook body, and what a dead letter keeps for replay."""
    f = ev.finding
    return {
        "schema": "vigil.alert.v1",
        "event_id": ev.event_id,
        "event": ev.kind,
        "at": iso(ev.at),
        "severity": ev.severity,
        "previous_severity": ev.previous_severity,
        "reason": ev.reason,
        "actor": ev.actor,
        "finding": {
            "id": f.id,
            "type": f.type,
            "status": ev.status,
            "severity": ev.severity,
            "subject": f.subject,
            "cluster": {"id": f.cluster_id, "name": f.cluster_name} if f.cluster_id else None,
            "namespace": f.namespace,
            "workload": {"kind": f.workload_kind, "name": f.workload_name} if f.workload_name else None,
            "image": f.image,
            "evidence": f.evidence,
            "first_seen_at": iso(f.first_seen_at),
            "last_seen_at": iso(f.last_seen_at),
        },
    }


def headline(ev: AlertEvent) -> str:
    """One line for humans (Slack text, syslog MSG)."""
    f = ev.finding
    where = " ".join(
        p
        for p in (
            f"cluster={f.cluster_name or f.cluster_id}" if f.cluster_id else "",
            f"namespace={f.namespace}" if f.namespace else "",
            f"workload={f.workload}" if f.workload else "",
        )
        if p
    )
    change = f" (was {ev.previous_severity})" if ev.kind == "escalated" and ev.previous_severity else ""
    text = f"Vigil finding {ev.kind}: {ev.severity}{change} {f.type} {f.subject}"
    return f"{text} [{where}]" if where else text
