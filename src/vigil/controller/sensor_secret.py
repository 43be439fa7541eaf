"""The sensors' Secret, written by the controller: the sensors of a cluster ship under the cluster's credential,
and the controller is the one part in the cluster that holds it, so nobody copies it by hand.

The Secret has the keys the sensor DaemonSet reads (deploy/helm/vigil): ``cluster-id``, ``credential`` and
``service-url``. The API calls, and so the RBAC the controller needs in the sensors' namespace: ``get`` and
``patch`` on that one Secret and ``create`` on secrets (``create`` cannot be limited by name). Keys or
metadata others put on the Secret are kept; it is patched only when a value differs.
"""

from __future__ import annotations

import base64
import binascii
import logging

from .credentials import ClusterCredential, CredentialError
from .kube import KubeApi, KubeError

log = logging.getLogger(__name__)
_MERGE_PATCH = "application/merge-patch+json"
_ATTEMPTS = 5


def sensor_values(cred: ClusterCredential, service_url: str) -> dict[str, str]:
    """What the sensors read: the cluster id, its credential, and the service URL the controller uses."""
    return {"cluster-id": cred.cluster_id, "credential": cred.credential, "service-url": service_url}


def _decoded(data: dict[str, object]) -> dict[str, str]:
    values = {}
    for key, raw in data.items():
        try:
            values[key] = base64.b64decode(str(raw), validate=True).decode()
        except (binascii.Error, ValueError):
            values[key] = ""  # not ours to read: differs from every value written, so it is rewritten
    return values


async def publish_sensor_secret(
    api: KubeApi, namespace: str, name: str, cred: ClusterCredential, service_url: str
) -> bool:
    """Make Secret ``namespace/name`` hold the sensors' values; True when it was created or changed."""
    where = f"Secret {namespace}/{name}"
    collection = f"/api/v1/namespaces/{namespace}/secrets"
    wanted = sensor_values(cred, service_url)
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
                log.info("sensor credential for cluster %s written to %s", cred.cluster_id, where)
                return True
            current = _decoded(secret.get("data") or {})
            if all(current.get(key) == value for key, value in wanted.items()):
                return False
            patch = {"metadata": {"resourceVersion": str(secret["metadata"]["resourceVersion"])}, "data": data}
            await api.request_object("PATCH", f"{collection}/{name}", patch, _MERGE_PATCH)
            log.info("sensor credential for cluster %s updated in %s", cred.cluster_id, where)
            return True
        except KubeError as exc:
            if exc.code == 409:
                continue  # created or changed between the read and the write: read it again
            hint = " (the controller's service account needs get, create and patch on it)" if exc.code == 403 else ""
            raise CredentialError(f"writing the sensors' credential to {where}: {exc}{hint}") from None
    raise CredentialError(
        f"writing the sensors' credential to {where}: it changed under every one of {_ATTEMPTS} attempts"
    )
