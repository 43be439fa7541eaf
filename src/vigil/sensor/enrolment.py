"""This node's own credential: enrolled once with the cluster's enrolment credential, then kept.

The enrolment credential (the sensors' Secret, written by the controller) can do nothing but enrol; the
service answers with a credential that writes this node's runtime records and heartbeats only. It is
kept 0600 in the spool directory (a hostPath that outlives the sensor's pod), so a restarted sensor
reuses it instead of enrolling again.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

CREDENTIAL_FILE = "sensor-credential.json"
_ENROL_PATH = "/api/v1/clusters/{cluster_id}/sensors"
_DETAIL_LIMIT = 300


class EnrolmentError(Exception):
    """The service refused to enrol this node; the message says why."""


@dataclass(frozen=True)
class SensorCredential:
    cluster_id: str
    node: str
    id: str
    credential: str


def stored_credential(state_dir: Path, cluster_id: str, node: str) -> SensorCredential | None:
    """The credential kept in ``state_dir`` if it was issued for this cluster and node."""
    path = state_dir / CREDENTIAL_FILE
    try:
        doc = json.loads(path.read_text())
        kept = SensorCredential(str(doc["cluster_id"]), str(doc["node"]), str(doc["id"]), str(doc["credential"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring unreadable sensor credential %s; enrolling again", path)
        return None
    if (kept.cluster_id, kept.node) != (cluster_id, node):
        log.warning(
            "sensor credential %s was issued for node %s of cluster %s, not node %s of %s; enrolling again",
            path,
            kept.node,
            kept.cluster_id,
            node,
            cluster_id,
        )
        return None
    return kept


def _keep(state_dir: Path, cred: SensorCredential) -> Path:
    """Write the credential 0600 (created so, never widened after), atomically."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / CREDENTIAL_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"cluster_id": cred.cluster_id, "node": cred.node, "id": cred.id, "credential": cred.credential}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail)[:_DETAIL_LIMIT] if detail else f"HTTP {resp.status_code}"


def enrol(
    service: str,
    enrolment_credential: str,
    cluster_id: str,
    node: str,
    state_dir: Path,
    *,
    verify: bool | ssl.SSLContext = True,
    stop: threading.Event | None = None,
    backoff_max_s: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> SensorCredential:
    """This node's credential: the one kept in ``state_dir``, else a new one from the service (kept there).

    An unreachable or failing service (transport error, 5xx, 408, 429) is retried with backoff until
    ``stop`` is set; any other refusal raises EnrolmentError at once.
    """
    kept = stored_credential(state_dir, cluster_id, node)
    if kept is not None:
        log.info("using sensor credential %s for node %s", kept.id, node)
        return kept
    delay = 1.0
    with httpx.Client(
        base_url=service.rstrip("/"),
        headers={"Authorization": f"Bearer {enrolment_credential}", "User-Agent": "vigil-sensor"},
        timeout=10.0,
        verify=verify,
        transport=transport,
    ) as client:
        while True:
            try:
                resp = client.post(_ENROL_PATH.format(cluster_id=cluster_id), json={"node": node})
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                if resp.is_success:
                    doc = resp.json()
                    cred = SensorCredential(cluster_id, node, str(doc["id"]), str(doc["credential"]))
                    path = _keep(state_dir, cred)
                    log.info(
                        "enrolled node %s of cluster %s: credential %s kept in %s", node, cluster_id, cred.id, path
                    )
                    return cred
                if resp.status_code < 500 and resp.status_code not in (408, 429):
                    raise EnrolmentError(
                        f"the service refused to enrol node {node} of cluster {cluster_id}: {_detail(resp)}"
                    )
                why = f"HTTP {resp.status_code}"
            if stop is not None and stop.is_set():
                raise EnrolmentError(f"stopped before node {node} was enrolled ({why})")
            log.warning("enrolment of node %s not done (%s); retrying in %.0fs", node, why, delay)
            if stop is not None:
                stop.wait(delay)
            else:
                threading.Event().wait(delay)
            delay = min(delay * 2, backoff_max_s)
