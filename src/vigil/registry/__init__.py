"""OCI distribution client: manifests, indexes, tags, blobs, image configs, auth, caches.

Entry point::

    from vigil.registry import RegistryClient, RegistryConfig
    with RegistryClient(RegistryConfig.load(), tag_ttl=60) as client:
        digest = client.resolve_tag("localhost:5000/app:1.0")
        same = client.same_artifact("localhost:5000/app:1.0", running_digest)

Errors are typed (``AuthError``, ``NotFound``, ``Unreachable``, ``DigestMismatch``,
all ``RegistryError``); ``client.stats`` counts requests made.
"""

from .cache import LRUCache, TTLCache
from .client import BlobReader, RegistryClient, Resolved, content_digest
from .config import RegistryConfig, RegistryConfigError, RegistrySettings, Secret, env_key
from .errors import AuthError, DigestMismatch, NotFound, NotFoundKind, RegistryError, Unreachable
from .manifest import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    InvalidManifest,
    Manifest,
    Platform,
    parse_manifest,
    same_artifact,
)
from .provenance import ImageConfig, Provenance
from .transport import RequestStats, RetryPolicy
from .upload import RegistryWriter

__all__ = [
    "AuthError",
    "BlobReader",
    "Descriptor",
    "DigestMismatch",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "InvalidManifest",
    "LRUCache",
    "Manifest",
    "NotFound",
    "NotFoundKind",
    "Platform",
    "Provenance",
    "RegistryClient",
    "RegistryConfig",
    "RegistryConfigError",
    "RegistryError",
    "RegistrySettings",
    "RegistryWriter",
    "RequestStats",
    "Resolved",
    "RetryPolicy",
    "Secret",
    "TTLCache",
    "Unreachable",
    "content_digest",
    "env_key",
    "parse_manifest",
    "same_artifact",
]
