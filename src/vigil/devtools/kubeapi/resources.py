"""The resource types the test API server serves: one table, one row per resource.

Each row says where the resource lives in the API (group, version, plural), whether it
is namespaced, and which field selectors the real API server accepts for it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Field selectors every resource accepts (generic registry fields).
_GENERIC_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    extra_fields: tuple[str, ...] = ()
    # Whether the main endpoint ignores status (it has a /status subresource).
    has_status: bool = True
    has_scale: bool = False
    categories: tuple[str, ...] = ("all",)
    # Subresources beyond status and scale that take the whole object (pods/ephemeralcontainers).
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def field_selectors(self) -> tuple[str, ...]:
        return _GENERIC_FIELDS + self.extra_fields


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), ("status.phase",), categories=()),
    ResourceType("", "v1", "Node", "nodes", "node", False, ("no",), ("spec.unschedulable",), categories=()),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        True,
        ("po",),
        (
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
        subresources=("ephemeralcontainers",),
    ),
    # Secrets have no status; ``type`` is their one extra field selector. Not in the "all" category.
    ResourceType("", "v1", "Secret", "secrets", "secret", True, (), ("type",), has_status=False, categories=()),
    ResourceType(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        True,
        ("rc",),
        ("status.replicas",),
        has_scale=True,
    ),
    ResourceType("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",), has_scale=True),
    ResourceType(
        "apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",), ("status.replicas",), has_scale=True
    ),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, ("sts",), has_scale=True),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",)),
    ResourceType("batch", "v1", "Job", "jobs", "job", True, (), ("status.successful",)),
    ResourceType("batch", "v1", "CronJob", "cronjobs", "cronjob", True, ("cj",)),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        False,
        has_status=False,
        categories=("api-extensions",),
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        False,
        has_status=False,
        categories=("api-extensions",),
    ),
)
WEBHOOK_KINDS = frozenset({"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"})

BY_PATH: dict[tuple[str, str, str], ResourceType] = {(r.group, r.version, r.plural): r for r in RESOURCE_TYPES}
BY_KIND: dict[tuple[str, str], ResourceType] = {(r.api_version, r.kind): r for r in RESOURCE_TYPES}
GROUP_VERSIONS: dict[str, list[ResourceType]] = {}
for _r in RESOURCE_TYPES:
    GROUP_VERSIONS.setdefault(_r.group_version, []).append(_r)


def resource_for(api_version: str, kind: str) -> ResourceType:
    try:
        return BY_KIND[(api_version, kind)]
    except KeyError:
        known = ", ".join(sorted(f"{r.api_version}/{r.kind}" for r in RESOURCE_TYPES))
        raise KeyError(f"no resource for apiVersion {api_version!r} kind {kind!r}; served: {known}") from None
