"""A Secret the controller writes for another part of Vigil in the cluster (the sensors' enrolment credential,
the admission webhook's credential), so nobody copies a credential by hand.

The API calls, and so the RBAC the controller needs in that namespace: ``get`` and ``patch`` on that one
Secret and ``create`` on secrets (``create`` cannot be limited by name). Keys or metadata others put on the
Secret are kept; it is patched only when a value differs (a merge patch carrying the resourceVersion read,
so two writers never overwrite each other unnoticed).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping

from .credentials import CredentialError
from .kube import KubeApi, KubeError

log = logging.getLogger(__name__)
_MERGE_PATCH = "application/merge-patch+json"
_ATTEMPTS = 5


def _decoded(data: dict[str, object]) -> dict[str, str]:
    values = {}
    for key, raw in data.items():
        try:
            values[key] = base64.b64decode(str(raw), validate=True).decode()
        except (binascii.Error, ValueError):
            values[key] = ""  # not ours to read: differs from every value written, so it is rewritten
    return values


async def publish_secret(
    api: KubeApi,
    namespace: str,
    name: str,
    wanted: Mapping[str, str],
    *,
    component: str,
    what: str,
    withdrawn: tuple[str, ...] = (),
) -> bool:
    """Make Secret ``namespace/name`` hold ``wanted`` (and none of the ``withdrawn`` keys); True when it was
    created or changed. ``what`` names its contents in logs and errors ("the sensors' credential")."""
    where = f"Secret {namespace}/{name}"
    collection = f"/api/v1/namespaces/{namespace}/secrets"
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
                            "labels": {"app.kubernetes.io/name": "vigil", "app.kubernetes.io/component": component},
                        },
                        "data": data,
                    },
                )
                log.info("%s written to %s", what, where)
                return True
            current = _decoded(secret.get("data") or {})
            stale = [key for key in withdrawn if key in current]
            if not stale and all(current.get(key) == value for key, value in wanted.items()):
                return False
            changes: dict[str, str | None] = dict(data)
            for key in stale:
                changes[key] = None  # a merge patch's null removes the key
            patch = {"metadata": {"resourceVersion": str(secret["metadata"]["resourceVersion"])}, "data": changes}
            await api.request_object("PATCH", f"{collection}/{name}", patch, _MERGE_PATCH)
            log.info("%s updated in %s", what, where)
            return True
        except KubeError as exc:
            if exc.code == 409:
                continue  # created or changed between the read and the write: read it again
            hint = " (the controller's service account needs get, create and patch on it)" if exc.code == 403 else ""
            raise CredentialError(f"writing {what} to {where}: {exc}{hint}") from None
    raise CredentialError(f"writing {what} to {where}: it changed under every one of {_ATTEMPTS} attempts")
