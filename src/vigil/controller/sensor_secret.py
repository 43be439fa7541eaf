"""The sensors' Secret, written by the controller: what a cluster's sensors need to enrol, so nobody copies a
credential by hand.

The Secret has the keys the sensor DaemonSet reads (deploy/helm/vigil): ``cluster-id``,
``enrolment-credential`` and ``service-url``. The enrolment credential only enrols sensors, each of which
gets a credential for its own node: the cluster's (controller's) credential is not given to the nodes, and
a ``credential`` key an earlier version wrote there is removed. How it is written, and the RBAC that needs:
``published_secret.py``.
"""

from __future__ import annotations

from .kube import KubeApi
from .published_secret import publish_secret

# The cluster credential, which sensors were once given: a node must not hold it.
_WITHDRAWN = "credential"


def sensor_values(cluster_id: str, enrolment_credential: str, service_url: str) -> dict[str, str]:
    """What the sensors read: the cluster id, its enrolment credential, and the service URL the controller uses."""
    return {"cluster-id": cluster_id, "enrolment-credential": enrolment_credential, "service-url": service_url}


async def publish_sensor_secret(
    api: KubeApi, namespace: str, name: str, cluster_id: str, enrolment_credential: str, service_url: str
) -> bool:
    """Make Secret ``namespace/name`` hold the sensors' values; True when it was created or changed."""
    return await publish_secret(
        api,
        namespace,
        name,
        sensor_values(cluster_id, enrolment_credential, service_url),
        component="sensor",
        what=f"the sensors' credential for cluster {cluster_id}",
        withdrawn=(_WITHDRAWN,),
    )
