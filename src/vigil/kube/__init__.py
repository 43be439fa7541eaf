"""Kubernetes API access shared by the controller and the admission webhook: where the API server is and
how to authenticate to it (a pod's service account or a kubeconfig), and an HTTP client that reads raw JSON.

Vigil reads and writes a handful of resources as plain JSON, so it needs no generated client: the one it
used before imported ~960 modules (37 MB of a controller's memory) to make the same few requests.
"""
