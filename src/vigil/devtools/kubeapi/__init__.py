"""A faithful test Kubernetes API server: list/watch with resourceVersions, 410 Gone, bookmarks.

Follows the Kubernetes API concepts for core/v1, apps/v1 and batch/v1 workload kinds, so
that real client libraries and kubectl can talk to it over HTTP.
"""

from .loader import LoadError, load_directory
from .server import KubeAPIServer
from .store import ApiStore

__all__ = ["ApiStore", "KubeAPIServer", "LoadError", "load_directory"]
