"""The admission webhook's Secret, written by the controller in its own namespace: the webhook's credential,
which only reads its cluster's admission feed and records its decisions (never the controller's own).

Keys, as the chart's webhook Deployment reads them (deploy/helm/vigil): ``credential`` and ``cluster-id``.
How it is written, and the RBAC that needs: ``published_secret.py``.
"""

from __future__ import annotations

from .kube import KubeApi
from .published_secret import publish_secret


def admission_values(cluster_id: str, admission_credential: str) -> dict[str, str]:
    return {"credential": admission_credential, "cluster-id": cluster_id}


async def publish_admission_secret(
    api: KubeApi, namespace: str, name: str, cluster_id: str, admission_credential: str
) -> bool:
    """Make Secret ``namespace/name`` hold the webhook's values; True when it was created or changed."""
    return await publish_secret(
        api,
        namespace,
        name,
        admission_values(cluster_id, admission_credential),
        component="admission",
        what=f"the admission webhook's credential for cluster {cluster_id}",
    )
