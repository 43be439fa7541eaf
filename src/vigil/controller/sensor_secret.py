"""The sensors' Secret, written by the controller: what a cluster's sensors need to enrol, so nobody copies a
credential by hand.

The Secret has the keys the sensor DaemonSet reads (deploy/helm/vigil): ``cluster-id``,
``enrolment-credential`` and ``service-url``. The enrolment credential only enrols sensors, each of which
gets a credential for its own node: the cluster's (controller's) credential is not given to the nodes, and
a ``credential`` key an earlier version wrote there is removed. The API calls, and so the RBAC the
controller needs in the sensors' namespace: ``get`` and ``patch`` on that one Secret and ``create`` on
secrets (``create`` cannot be limited by name). Keys or metadata others put on the Secret are kept; it is
patched only when a value differs.
"""

from __future__ import annotations

import base64
import binascii
import logging

from .credentials import CredentialError
from .kube import KubeApi, KubeError

log = logging.getLogger(__name__)
_MERGE_PATCH = "application/merge-patch+json"
_ATTEMPTS = 5
# The cluster credential, which sensors were once given: a node must not hold it.
_WITHDRAWN = "credential"


def sensor_values(cluster_id: str, enrolment_credential: str, service_url: str) -> dict[str, str]:
    """What the sensors read: the cluster id, its enrolment credential, and the service URL the controller uses."""
    return {"cluster-id": cluster_id, "enrolment-credential": enrolment_credential, "service-url": service_url}


def _decoded(data: dict[str, object]) -> dict[str, str]:
    values = {}
    for key, raw in data.items():
        try:
            values[key] = base64.b64decode(str(raw), validate=True).decode()
        except (binascii.Error, ValueError):
            values[key] = ""  # not ours to read: differs from every value written, so it is rewritten
    return values


async def publish_sensor_secret(
    api: KubeApi, namespace: str, name: str, cluster_id: str, enrolment_credential: str, service_url: str
) -> bool:
    """Make Secret ``namespace/name`` hold the sensors' values; True when it was created or changed."""
    where = f"Secret {namespace}/{name}"
    collection = f"/api/v1/namespaces/{namespace}/secrets"
    wanted = sensor_values(cluster_id, enrolment_credential, service_url)
    data = {key: base64.b64encode(value.encode()).decode() for key, value in wanted.items()}
    for _ in range(_ATTEMPTS):
        try:
            try:
                secret = await api.request_object("GET", f"{collection}/{name}")
            except KubeError as exc:
                if exc.code != 404:
                    raise
                await api.request_object(
                    "POST",
                    collection,
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "type": "Opaque",
                        "metadata": {
                            "name": name,
                            "namespace": namespace,
                            "labels": {"app.kubernetes.io/name": "vigil", "app.kubernetes.io/component": "sensor"},
                        },
                        "data": data,
                    },
                )
                log.info("sensor enrolment credential for cluster %s written to %s", cluster_id, where)
                return True
            current = _decoded(secret.get("data") or {})
            if _WITHDRAWN not in current and all(current.get(key) == value for key, value in wanted.items()):
                return False
            changes: dict[str, str | None] = dict(data)
            if _WITHDRAWN in current:
                changes[_WITHDRAWN] = None  # a merge patch's null removes the key
            patch = {"metadata": {"resourceVersion": str(secret["metadata"]["resourceVersion"])}, "data": changes}
            await api.request_object("PATCH", f"{collection}/{name}", patch, _MERGE_PATCH)
            log.info("sensor enrolment credential for cluster %s updated in %s", cluster_id, where)
            return True
        except KubeError as exc:
            if exc.code == 409:
                continue  # created or changed between the read and the write: read it again
            hint = " (the controller's service account needs get, create and patch on it)" if exc.code == 403 else ""
            raise CredentialError(f"writing the sensors' credential to {where}: {exc}{hint}") from None
    raise CredentialError(
        f"writing the sensors' credential to {where}: it changed under every one of {_ATTEMPTS} attempts"
    )
