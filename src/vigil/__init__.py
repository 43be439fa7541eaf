"""Vigil: runtime security for Kubernetes with the artifact registry as the source of truth."""

__version__ = "0.1.0"
