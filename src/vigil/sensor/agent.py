"""The sensor's main loop: drain the kernel, resolve, aggregate, spool, ship, beat."""

from __future__ import annotations

import json
import logging
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.clock import utcnow
from vigil.sensor.activity import Activity, ActivityAggregator
from vigil.sensor.aggregate import Aggregator, Execution
from vigil.sensor.enforcer import Enforcer
from vigil.sensor.loader import BTF_PATH, ProcessTracer
from vigil.sensor.pipeline import EventPipeline, Exit, Resolved, boot_to_wall_offset_ns
from vigil.sensor.prevention import Prevention, PreventionAggregator
from vigil.sensor.repeats import ExecRepeats
from vigil.sensor.shipper import Shipper
from vigil.sensor.spool import Spool
from vigil.wire.runtime import RuntimeBatch, SensorHeartbeat, SensorStatus

log = logging.getLogger(__name__)

try:
    from importlib.metadata import version as _pkg_version

    SENSOR_VERSION = _pkg_version("vigil")
except Exception:
    SENSOR_VERSION = "0+unknown"


STOPPED_ENFORCEMENT = "the sensor stopped: runtime prevention is off on this node until it runs again"


@dataclass
class AgentSettings:
    cluster_id: str
    node_name: str
    batch_interval_s: float = 5.0
    heartbeat_interval_s: float = 15.0
    # The longest an event waits in the ring before user space sees it, whatever the window: an
    # early-closed window (urgent_gap_s) would otherwise still wait up to this on the drain.
    poll_timeout_ms: int = 50
    # A record that is likely a finding closes the window at once, at most once per this many
    # seconds (and never more often than the batch interval), so an attack that makes such records
    # in a loop costs at most one batch a second on top of the interval's.
    urgent_gap_s: float = 1.0

    @property
    def drain_timeout_ms(self) -> int:
        """How long one drain waits on the ring buffer.

        The kernel queues events without waking the reader until 64 KiB wait (a wakeup per event
        would cost a context switch per exec), so an event sits in the ring until the drain's
        timeout: a quarter of the batch window keeps that wait well under the window's own, so a
        short ``--batch-interval`` bounds detection latency as it says."""
        return min(self.poll_timeout_ms, max(10, int(self.batch_interval_s * 1000 / 4)))

    @property
    def urgent_every_s(self) -> float:
        return min(self.urgent_gap_s, self.batch_interval_s)


def urgent(resolved: Resolved) -> bool:
    """Whether a drain holds a record that is likely a finding and so goes out before the window ends:
    an exec of a file that is not the image's (the overlay's upper layer, a deleted file or a memfd:
    drift), or a file or kernel activity (the kernel passes only watched paths and operations);
    package loads are not: an interpreter reads many package files, and they only label
    vulnerabilities. Repeats of a record already seen are counted in the kernel and arrive at the
    window's end, so a steady workload makes no early batch."""
    if any(ex.event.upper_layer or ex.event.unlinked for ex in resolved.executions):
        return True
    return any(a.event.kind != "package_load" for a in resolved.activities)


def execution_json(ex: Execution) -> dict[str, Any]:
    """One attributed exec as a JSON-able dict (the `--output json` line)."""
    e = ex.event
    return {
        "event": "exec",
        "time": ex.time.isoformat(),
        "pid": e.proc.tgid,
        "ppid": e.proc.ppid,
        "uid": e.proc.uid,
        "comm": e.proc.comm,
        "path": e.path,
        "filename": e.filename,
        "upper_layer": e.upper_layer,
        "argv": e.argv,
        "sha256": ex.binary_sha256,
        "script": ex.script_path,
        "script_sha256": ex.script_sha256,
        "libraries": [{"path": lib.path, "sha256": lib.sha256} for lib in ex.libraries],
        "cgroup_id": e.proc.cgroup_id,
        "container_id": ex.attribution.container_ref,
        "pod_uid": ex.attribution.pod_uid,
    }


def activity_json(a: Activity) -> dict[str, Any]:
    """One file access or kernel operation as a JSON-able dict (the `--output json` line)."""
    e = a.event
    return {
        "event": a.event.kind,
        "time": a.time.isoformat(),
        "pid": e.proc.tgid,
        "ppid": e.proc.ppid,
        "uid": e.proc.uid,
        "comm": e.proc.comm,
        "exe": a.process.exe,
        "argv": a.process.argv,
        "parents": a.process.parents,
        "target": a.target,
        "detail": a.detail,
        "upper_layer": e.upper_layer,
        "result": e.result,
        "cgroup_id": e.proc.cgroup_id,
        "container_id": a.attribution.container_ref,
        "pod_uid": a.attribution.pod_uid,
    }


def prevention_json(p: Prevention) -> dict[str, Any]:
    """What a prevention rule did (or, in audit mode, would have done), as the `--output json` line."""
    e = p.event
    return {
        "event": "prevented",
        "time": p.time.isoformat(),
        "rule": str(p.rule),
        "mode": p.mode,
        "killed": e.killed,
        "operation": p.operation,
        "path": p.path,
        "sha256": p.sha256,
        "upper_layer": e.upper_layer,
        "pid": e.proc.tgid,
        "ppid": e.proc.ppid,
        "uid": e.proc.uid,
        "comm": e.proc.comm,
        "argv": e.argv,
        "parents": p.parents,
        "policy_revision": p.policy_revision,
        "cgroup_id": e.proc.cgroup_id,
        "container_id": p.attribution.container_ref,
        "pod_uid": p.attribution.pod_uid,
    }


def exit_json(x: Exit) -> dict[str, Any]:
    return {
        "event": "exit",
        "time": x.time.isoformat(),
        "pid": x.event.proc.tgid,
        "exit_status": x.event.exit_status,
        "exit_signal": x.event.exit_signal,
        "container_id": x.container_id,
        "pod_uid": x.pod_uid,
    }


class SensorAgent:
    def __init__(
        self,
        settings: AgentSettings,
        tracer: ProcessTracer,
        pipeline: EventPipeline,
        *,
        spool: Spool | None = None,
        shipper: Shipper | None = None,
        emit: Callable[[str], None] | None = None,
        enforcer: Enforcer | None = None,
    ):
        self.settings = settings
        self.tracer = tracer
        self.pipeline = pipeline
        self.spool = spool
        self.shipper = shipper
        self.emit = emit
        self.aggregator = Aggregator()
        self.activities = ActivityAggregator()
        self.enforcer = enforcer
        self.preventions = PreventionAggregator()
        # Set by the drain thread when the kernel prevented something: the sender closes the window
        # at once instead of at the end of the batch interval.
        self._wake = threading.Event()
        self._prevented = False
        self._urgent = False  # set by the drain thread: the sender closes the window early (urgent_every_s)
        if enforcer is not None:
            enforcer.notify = self._wake.set
        # Repeat execs counted in the kernel, when the tracer does so.
        self.repeats = ExecRepeats(tracer) if getattr(tracer, "exec_aggregation", False) else None
        # step() (the drain thread) adds to the aggregator while the sender thread closes windows.
        self._window_lock = threading.Lock()
        self.events_seen = 0
        self.stop_reason: str | None = None
        self._window_start = utcnow()

    def step(self, timeout_ms: int | None = None) -> int:
        """One drain of the ring buffer; returns how many records it held."""
        records = self.tracer.poll(self.settings.drain_timeout_ms if timeout_ms is None else timeout_ms)
        if not records:
            return 0
        self.events_seen += len(records)
        resolved = self.pipeline.resolve(records)
        with self._window_lock:
            for ex in resolved.executions:
                self.aggregator.add(ex)
                if self.repeats is not None:
                    self.repeats.note(ex)
            for act in resolved.activities:
                self.activities.add(act)
                if self.repeats is not None:
                    self.repeats.note_activity(act)
            for prev in resolved.preventions:
                self.preventions.add(prev)
        if self.enforcer is not None:
            for ex in resolved.executions:
                self.enforcer.note_file(ex.event.file, ex.binary_sha256)
            for prev in resolved.preventions:
                if prev.event.file is not None:
                    self.enforcer.note_file(prev.event.file, prev.sha256)
        if resolved.preventions:
            self._prevented = True
            self._wake.set()
        elif urgent(resolved):
            self._urgent = True
            self._wake.set()
        if self.emit:
            for ex in resolved.executions:
                self.emit(json.dumps(execution_json(ex)))
            for act in resolved.activities:
                self.emit(json.dumps(activity_json(act)))
            for prev in resolved.preventions:
                self.emit(json.dumps(prevention_json(prev)))
        if self.emit:
            for x in resolved.exits:
                self.emit(json.dumps(exit_json(x)))
        return len(records)

    def flush_batch(self) -> RuntimeBatch | None:
        """Close the current window into a spooled batch (none when nothing ran)."""
        with self._window_lock:
            if self.repeats is not None:
                offset = boot_to_wall_offset_ns()
                self.repeats.collect(
                    self.aggregator, self.activities, lambda ns: datetime.fromtimestamp((ns + offset) / 1e9, tz=UTC)
                )
            now = utcnow()
            window = self.aggregator.take()
            acts = self.activities.take()
            prevs = self.preventions.take()
            start, self._window_start = self._window_start, now
        records = Aggregator.records(window)
        activities = ActivityAggregator.records(acts)
        preventions = PreventionAggregator.records(prevs)
        if (not records and not activities and not preventions) or self.spool is None:
            return None
        seq = self.spool.next_seq()
        batch = RuntimeBatch(
            batch_id=f"{self.spool.sensor_id}-{seq}",
            cluster_id=self.settings.cluster_id,
            node_name=self.settings.node_name,
            sensor_id=self.spool.sensor_id,
            seq=seq,
            window_start=start,
            window_end=now,
            records=records,
            activities=activities,
            preventions=preventions,
        )
        self.spool.put(batch)
        return batch

    def heartbeat(self, status: SensorStatus = "running", error: str | None = None) -> SensorHeartbeat:
        counters = self.tracer.counters()
        return SensorHeartbeat(
            cluster_id=self.settings.cluster_id,
            node_name=self.settings.node_name,
            status=status,
            error=error,
            version=SENSOR_VERSION,
            kernel=platform.release(),
            btf=BTF_PATH.exists(),
            events_seen=self.events_seen,
            events_lost=counters["lost"],
            events_filtered=counters["filtered"],
            # "is not None": a Spool is falsy when empty, and its drop counts matter most then.
            batches_spooled=len(self.spool) if self.spool is not None else 0,
            batches_dropped=self.spool.dropped_batches if self.spool is not None else 0,
            records_dropped=(self.spool.dropped_records if self.spool is not None else 0)
            + self.aggregator.overflowed
            + self.activities.overflowed
            + self.preventions.overflowed,
            interval_seconds=max(1, int(self.settings.heartbeat_interval_s)),
            policy_revision=self.enforcer.revision if self.enforcer is not None else None,
            enforcement_error=self.enforcer.error if self.enforcer is not None else None,
        )

    def _beat(self) -> None:
        if self.shipper is None:
            return
        answer = self.shipper.heartbeat(self.heartbeat())
        # The service answers a heartbeat with what it knows about this node;
        # a node labelled vigil.dev/sensor=disabled must not be traced.
        if answer and answer.get("sensor_disabled") is True:
            self.stop_reason = "node is labelled vigil.dev/sensor=disabled"
            log.warning("stopping: %s", self.stop_reason)
            self.shipper.heartbeat(self.heartbeat(status="disabled", error=self.stop_reason))

    def run(self, stop: threading.Event | None = None, duration_s: float | None = None) -> None:
        """Drain the kernel in this thread; close windows, ship and beat in another.

        Shipping waits on the network and the spool's fsync; done between drains it
        would leave the ring buffer unread for as long, and a busy node would lose
        events. The drain thread only decodes, resolves and aggregates.
        """
        stop = stop or threading.Event()
        sender_done = threading.Event()
        sender = threading.Thread(target=self._send_loop, args=(sender_done,), name="vigil-sensor-sender", daemon=True)
        t0 = time.monotonic()
        sender.start()
        try:
            while not stop.is_set() and self.stop_reason is None:
                if duration_s is not None and time.monotonic() - t0 >= duration_s:
                    break
                self.step()
        finally:
            sender_done.set()
            self._wake.set()
            sender.join()
            if self.stop_reason is not None:
                # The node is not to be traced: what the window holds is not shipped.
                dropped = len(self.aggregator.take()) + len(self.activities.take()) + len(self.preventions.take())
                if dropped:
                    log.warning("not shipping %d records of the last window: %s", dropped, self.stop_reason)
            else:
                # Whatever was seen is spooled (and sent, if the service answers) before leaving.
                while self.step(0):
                    pass
                self.flush_batch()
                if self.shipper is not None:
                    self.shipper.ship(force=True)
                    if self.enforcer is not None and self.enforcer.revision is not None:
                        # The kernel programs go with this process: say so now rather than let the
                        # service find out from missed heartbeats.
                        self.enforcer.error = STOPPED_ENFORCEMENT
                        self.shipper.heartbeat(self.heartbeat())

    def _send_loop(self, done: threading.Event) -> None:
        next_batch = time.monotonic() + self.settings.batch_interval_s
        next_beat = time.monotonic()
        urgent_at = -self.settings.urgent_every_s  # when the window last closed early
        closing_early = False
        while not done.is_set() and self.stop_reason is None:
            try:
                now = time.monotonic()
                prevented, self._prevented = self._prevented, False
                if self._urgent:
                    self._urgent = False
                    # At once, unless the last early close was too recent: then at the end of that gap.
                    early = max(now, urgent_at + self.settings.urgent_every_s)
                    if early < next_batch:
                        next_batch, closing_early = early, True
                if now >= next_batch or prevented:
                    if closing_early:
                        urgent_at, closing_early = now, False
                    self.flush_batch()
                    next_batch = now + self.settings.batch_interval_s
                if self.shipper is not None:
                    self.shipper.ship(force=prevented)
                if self.enforcer is not None and self.enforcer.changed.is_set():
                    # A new policy revision (or an enforcement error) is told at once, not at the next beat.
                    self.enforcer.changed.clear()
                    next_beat = now
                if now >= next_beat:
                    self._beat()
                    next_beat = now + self.settings.heartbeat_interval_s
            except Exception:
                log.exception("sensor sender round failed; retrying")
            self._wake.wait(max(0.05, min(next_batch, next_beat) - time.monotonic()))
            self._wake.clear()


def default_node_name() -> str:
    return os.environ.get("NODE_NAME") or platform.node()


def spool_default() -> Path:
    return Path(os.environ.get("VIGIL_SPOOL_DIR", "/var/lib/vigil/sensor-spool"))
