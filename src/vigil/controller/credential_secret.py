"""The cluster credential kept in one Kubernetes Secret, so a controller pod restarted after its
registration token expired keeps its cluster id (I/O through ``kube.KubeApi``).

The API calls, and so the RBAC the controller needs: ``get`` and ``patch`` on that one Secret (a
``resourceNames`` rule can name it) and ``create`` on secrets in its namespace (``create`` cannot be
limited by name). An update is a merge patch carrying the resourceVersion last read, so two writers
never overwrite each other unnoticed, and keys or metadata others put on the Secret are kept.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from .credentials import DEFAULT_SECRET_NAME, ClusterCredential, CredentialError
from .kube import KubeApi, KubeError, KubeObject

log = logging.getLogger(__name__)

# The same keys as the sensor's credential Secret (deploy/helm/vigil), so one can be copied to the other.
KEYS = {"cluster_id": "cluster-id", "credential": "credential", "name": "cluster-name", "service": "service-url"}
_MERGE_PATCH = "application/merge-patch+json"
_ATTEMPTS = 5


def secret_data(cred: ClusterCredential) -> dict[str, str]:
    values = {"cluster_id": cred.cluster_id, "credential": cred.credential, "name": cred.name, "service": cred.service}
    return {KEYS[field]: base64.b64encode(value.encode()).decode() for field, value in values.items() if value}


def credential_from_secret(secret: KubeObject, where: str) -> ClusterCredential | None:
    """The credential in a Secret's data; None when it holds none yet (e.g. made empty beforehand)."""
    data: dict[str, Any] = secret.get("data") or {}
    values: dict[str, str] = {}
    for field, key in KEYS.items():
        raw = data.get(key)
        if raw is None:
            continue
        try:
            values[field] = base64.b64decode(str(raw), validate=True).decode()
        except (binascii.Error, ValueError):
            raise CredentialError(f"{where}: key {key} is not base64 text") from None
    if not values.get("cluster_id") and not values.get("credential"):
        return None
    if not values.get("cluster_id") or not values.get("credential"):
        raise CredentialError(f"{where}: needs both keys {KEYS['cluster_id']} and {KEYS['credential']}")
    return ClusterCredential(
        values["cluster_id"], values["credential"], values.get("name", ""), values.get("service", "")
    )


class SecretCredentialStore:
    def __init__(self, api: KubeApi, namespace: str, name: str = DEFAULT_SECRET_NAME) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self._resource_version: str | None = None  # of the Secret as last read; None while it does not exist

    @property
    def where(self) -> str:
        return f"Secret {self.namespace}/{self.name}"

    @property
    def absent(self) -> str:
        return f"no credential in {self.where}"

    @property
    def _collection(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/secrets"

    def _failed(self, doing: str, exc: KubeError) -> CredentialError:
        hint = " (the controller's service account needs get, create and patch on it)" if exc.code == 403 else ""
        return CredentialError(f"{doing} {self.where}: {exc}{hint}")

    async def load(self) -> ClusterCredential | None:
        try:
            secret = await self.api.request_object("GET", f"{self._collection}/{self.name}")
        except KubeError as exc:
            if exc.code == 404:
                self._resource_version = None
                return None
            raise self._failed("reading", exc) from None
        self._resource_version = str(secret["metadata"]["resourceVersion"])
        return credential_from_secret(secret, self.where)

    async def save(self, cred: ClusterCredential) -> ClusterCredential:
        data = secret_data(cred)
        for _ in range(_ATTEMPTS):
            try:
                if self._resource_version is None:
                    secret = await self.api.request_object(
                        "POST",
                        self._collection,
                        {
                            "apiVersion": "v1",
                            "kind": "Secret",
                            "type": "Opaque",
                            "metadata": {
                                "name": self.name,
                                "namespace": self.namespace,
                                "labels": {
                                    "app.kubernetes.io/name": "vigil",
                                    "app.kubernetes.io/component": "controller",
                                },
                            },
                            "data": data,
                        },
                    )
                else:
                    patch = {"metadata": {"resourceVersion": self._resource_version}, "data": data}
                    secret = await self.api.request_object(
                        "PATCH", f"{self._collection}/{self.name}", patch, _MERGE_PATCH
                    )
            except KubeError as exc:
                if exc.code != 409:
                    raise self._failed("keeping the credential in", exc) from None
                # Another writer got there first (a second controller, someone re-creating the Secret).
                stored = await self.load()
                if stored is not None and stored.cluster_id == cred.cluster_id:
                    log.info("%s already holds a credential for cluster %s; using it", self.where, cred.cluster_id)
                    return stored
                continue
            self._resource_version = str(secret["metadata"]["resourceVersion"])
            return cred
        raise CredentialError(
            f"keeping the credential in {self.where}: it changed under every one of {_ATTEMPTS} attempts"
        )
