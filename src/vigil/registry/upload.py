"""Writes to a registry: blob uploads, manifest puts, deletes (OCI distribution push API).

Used by the test tooling (``vigil.devtools.oci``) and any future mirroring; kept
apart from the read client so reading needs no push scope.
"""

from __future__ import annotations

import hashlib

from vigil.model.image import ImageRef, digest_error

from .client import RegistryClient, _as_ref, content_digest
from .errors import NotFound, NotFoundKind, RegistryError
from .transport import Target, raise_for_unexpected, registry_error_text

PUSH = ("pull", "push")
DELETE = ("pull", "push", "delete")


class RegistryWriter:
    """Push blobs and manifests, and delete manifests, through a client's transport and auth."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.transport = client.transport

    def blob_exists(self, image: ImageRef | str, digest: str) -> bool:
        ref = _as_ref(image)
        target = Target(ref.registry, ref.repository, digest, PUSH)
        response = self.transport.request("HEAD", target, f"/v2/{ref.repository}/blobs/{digest}", kind="blob_head")
        if response.status_code == 404:
            return False
        raise_for_unexpected(response, target, "blob HEAD")
        return True

    def push_blob(self, image: ImageRef | str, data: bytes, digest: str | None = None) -> str:
        """Upload ``data`` (monolithic POST then PUT) unless the repository has it; return its digest."""
        ref = _as_ref(image)
        digest = digest or content_digest(data)
        if digest != "sha256:" + hashlib.sha256(data).hexdigest():
            raise ValueError(f"blob digest {digest} does not match the data")
        if self.blob_exists(ref, digest):
            return digest
        target = Target(ref.registry, ref.repository, digest, PUSH)
        started = self.transport.request("POST", target, f"/v2/{ref.repository}/blobs/uploads/", kind="blob_upload")
        if started.status_code != 202 or "Location" not in started.headers:
            raise RegistryError(
                ref.registry,
                ref.repository,
                digest,
                f"blob upload not started: HTTP {started.status_code}{registry_error_text(started)}",
            )
        location = started.headers["Location"]
        if not location.startswith(("http://", "https://")):
            location = self.transport.settings(ref.registry).base_url + location
        separator = "&" if "?" in location else "?"
        finished = self.transport.request(
            "PUT",
            target,
            f"{location}{separator}digest={digest}",
            kind="blob_upload",
            headers={"Content-Type": "application/octet-stream"},
            content=data,
        )
        if finished.status_code != 201:
            raise RegistryError(
                ref.registry,
                ref.repository,
                digest,
                f"blob upload refused: HTTP {finished.status_code}{registry_error_text(finished)}",
            )
        return digest

    def put_manifest(self, image: ImageRef | str, reference: str, body: bytes, media_type: str) -> str:
        """Store a manifest under a tag or its digest; return the digest the registry announces."""
        ref = _as_ref(image)
        target = Target(ref.registry, ref.repository, reference, PUSH)
        response = self.transport.request(
            "PUT",
            target,
            f"/v2/{ref.repository}/manifests/{reference}",
            kind="manifest_put",
            headers={"Content-Type": media_type},
            content=body,
        )
        if response.status_code != 201:
            raise RegistryError(
                ref.registry,
                ref.repository,
                reference,
                f"manifest refused: HTTP {response.status_code}{registry_error_text(response)}",
            )
        digest = response.headers.get("Docker-Content-Digest") or content_digest(body)
        self.client.invalidate(ref, reference)
        return digest

    def delete_manifest(self, image: ImageRef | str, digest: str) -> None:
        """Delete a manifest by digest (the registry also drops the tags pointing at it)."""
        ref = _as_ref(image)
        problem = digest_error(digest)
        if problem:
            raise ValueError(f"manifest deletes need a digest; {digest!r}: {problem}")
        target = Target(ref.registry, ref.repository, digest, DELETE)
        response = self.transport.request(
            "DELETE", target, f"/v2/{ref.repository}/manifests/{digest}", kind="manifest_delete"
        )
        if response.status_code == 404:
            raise NotFound(
                ref.registry,
                ref.repository,
                digest,
                registry_error_text(response).strip(" ()") or "HTTP 404",
                NotFoundKind.MANIFEST_UNKNOWN,
            )
        if response.status_code != 202:
            raise_for_unexpected(response, target, "manifest DELETE")
            raise RegistryError(
                ref.registry, ref.repository, digest, f"manifest DELETE answered {response.status_code}"
            )
        self.client.invalidate(ref, digest)
        # Tags that pointed here are gone too; drop every cached tag of this repository resolving to it.
        self.client.forget_digest(ref, digest)
