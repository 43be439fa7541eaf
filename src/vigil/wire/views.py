"""What the service's API answers: one model per response body, for the OpenAPI document, for the
service to validate what it sends, and for clients (`vigil get`) to know each listing's columns.

Only pydantic and the standard library: a client imports this without the service. The models
describe the bodies as they are: timestamps are ISO 8601 as ``datetime.isoformat`` writes them, a
key a body leaves out stays out (the routes serialize with ``exclude_unset``), and nested documents
whose keys vary (evidence, settings, risk parts) are plain JSON objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# ISO 8601 as the service writes it (``+00:00``, not pydantic's ``Z``); parsed from that text too.
Timestamp = Annotated[
    datetime, Field(strict=False), PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json")
]
Number = int | float  # a whole number stays one: 0, not 0.0
JSONObject = dict[str, Any]

T = TypeVar("T")


class View(BaseModel):
    # A key the service sends that the model does not name is an error in the service's own
    # tests, so the document cannot drift from the bodies; strict, so a value is never coerced
    # (True would become 1) and a body goes out as the service built it.
    model_config = ConfigDict(extra="forbid", strict=True)


class Listing(View):
    """A row of a listing that `vigil get` prints: ``columns`` are dotted paths into the row."""

    columns: ClassVar[tuple[str, ...]] = ()


class Page(View, Generic[T]):
    """A page of a listing: ``next`` is the cursor to pass as ``after`` for the following page (null at the end)."""

    items: list[T]
    next: str | None = None


class Items(View, Generic[T]):
    """A whole (short) list."""

    items: list[T]


class Status(View):
    status: str


# -- health -------------------------------------------------------------------------------------


class Health(View):
    status: Literal["ok"]
    version: str


class Readiness(View):
    status: Literal["ready", "not_ready"]
    schema_: str | None = Field(default=None, alias="schema", description="the store's migration revision")
    detail: str | None = None


# -- tokens and clusters ------------------------------------------------------------------------


class IssuedUserToken(View):
    id: str
    name: str
    role: str
    token: str = Field(description="the secret, shown once")


class TokenInfo(View):
    id: str
    name: str
    role: str
    cluster_id: str | None
    created_at: Timestamp | None
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    max_uses: int | None
    uses: int


class IssuedRegistrationToken(View):
    id: str
    token: str = Field(description="the secret, shown once")
    expires_at: Timestamp
    max_uses: int | None
    cluster_id: str | None = Field(
        default=None, description="the cluster made for it (pending until its controller reports), the one it registers"
    )
    cluster_name: str | None = None


class Registration(View):
    cluster_id: str
    name: str
    credential: str = Field(description="the cluster's credential, shown once")


class CredentialInfo(View):
    """One of a cluster's credentials (never its secret): ``expiring`` is one replaced by a rotation,
    working until ``expires_at``."""

    id: str
    name: str
    kind: Literal["cluster", "enrolment", "sensor", "admission"] = Field(
        description="cluster: the controller's; enrolment: enrols sensors; sensor: one node's sensor; "
        "admission: the admission webhooks'"
    )
    node: str | None = Field(description="the node a sensor credential speaks for")
    cluster_id: str
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    state: Literal["active", "expiring", "expired", "revoked"]


class SensorEnrolment(View):
    cluster_id: str
    id: str
    credential: str = Field(description="the cluster's new enrolment credential, shown once")
    previous_valid_until: Timestamp = Field(description="when the cluster's earlier enrolment credentials stop working")


class AdmissionCredential(View):
    cluster_id: str
    id: str
    credential: str = Field(description="the cluster's new admission credential, shown once")
    previous_valid_until: Timestamp = Field(description="when the cluster's earlier admission credentials stop working")


class EnrolledSensor(View):
    cluster_id: str
    node: str
    id: str
    credential: str = Field(description="the node's sensor credential, shown once")
    previous_valid_until: Timestamp = Field(description="when the node's earlier sensor credentials stop working")


class RotatedCredential(View):
    cluster_id: str
    id: str
    credential: str = Field(description="the cluster's new credential, shown once")
    previous_valid_until: Timestamp = Field(description="when the cluster's earlier credentials stop working")


class Risk(View):
    """A risk score (0-100) with what it is made of (docs/risk.md)."""

    score: Number
    parts: JSONObject


class ControllerState(View):
    status: Literal["running", "stopped", "never_seen"]
    last_heartbeat_at: Timestamp | None
    version: str | None


class Cluster(Listing):
    columns: ClassVar[tuple[str, ...]] = ("id", "name", "controller.status", "last_seen_at", "nodes", "pods")
    id: str
    name: str
    created_at: Timestamp | None
    last_seen_at: Timestamp | None
    status: Literal["pending", "connected", "disconnected"] = Field(
        description="pending until the cluster's controller first reports, connected while it reports, "
        "disconnected once it stopped"
    )
    controller: ControllerState
    nodes: int
    pods: int
    risk: Risk | None = None


# -- inventory ----------------------------------------------------------------------------------


class SensorState(View):
    status: str
    reported_status: str | None
    error: str | None
    version: str | None
    kernel: str | None
    btf: bool | None
    events_seen: int | None
    events_lost: int | None
    batches_spooled: int | None
    batches_dropped: int | None
    last_heartbeat_at: Timestamp | None
    policy_revision: str | None = Field(
        default=None, description="the runtime policy revision the sensor last said it enforces"
    )
    enforcement_error: str | None = Field(default=None, description="why runtime prevention is not in force")


class Node(Listing):
    columns: ClassVar[tuple[str, ...]] = (
        "cluster_id",
        "name",
        "kernel_version",
        "os_image",
        "container_runtime",
        "architecture",
        "sensor_disabled",
    )
    cluster_id: str
    name: str
    labels: dict[str, str]
    kernel_version: str
    os_image: str
    container_runtime: str
    architecture: str
    kubelet_version: str
    conditions: dict[str, str]
    sensor_disabled: bool
    updated_at: Timestamp | None
    sensor: SensorState


class WorkloadRef(View):
    kind: str | None
    name: str | None


class Workload(Listing):
    columns: ClassVar[tuple[str, ...]] = ("cluster_id", "namespace", "kind", "name", "pods")
    cluster_id: str
    namespace: str
    kind: str
    name: str
    owner_chain: list[JSONObject]
    labels: dict[str, str]
    updated_at: Timestamp | None
    pods: int
    risk: Risk


class Container(View):
    name: str
    kind: str
    container_id: str | None
    image: str
    image_id: str | None
    image_digest: str | None
    image_pk: int
    state: str | None
    restart_count: int | None


class PodSecurity(View):
    privileged: bool | None
    host_pid: bool | None
    host_network: bool | None
    host_ipc: bool | None
    run_as_non_root: bool | None
    run_as_user: int | None
    added_capabilities: list[str] | None


class Pod(Listing):
    columns: ClassVar[tuple[str, ...]] = (
        "cluster_id",
        "namespace",
        "name",
        "node_name",
        "phase",
        "workload.kind",
        "workload.name",
    )
    cluster_id: str
    uid: str
    namespace: str
    name: str
    node_name: str | None
    phase: str | None
    service_account: str | None
    workload: WorkloadRef
    labels: dict[str, str]
    security: PodSecurity
    containers: list[Container]
    updated_at: Timestamp | None


class ImageUsage(View):
    containers: int
    workloads: int
    clusters: int


class Integrity(View):
    """An image's trust and integrity verdict: the worst over the clusters running it, and each cluster's."""

    status: str
    findings: list[str]
    evidence: JSONObject
    checked_at: Timestamp | None
    clusters: list[JSONObject]
    provenance: JSONObject | None


class ImageInfo(View):
    id: int
    ref: str
    registry: str | None
    repository: str
    tag: str | None
    digest: str | None
    first_seen_at: Timestamp | None


class Image(ImageInfo, Listing):
    columns: ClassVar[tuple[str, ...]] = ("id", "ref", "usage.containers", "usage.workloads", "usage.clusters")
    usage: ImageUsage
    integrity: Integrity
    risk: Risk
    coverage: AdvisoryCoverage | None = Field(
        description="advisory coverage of the digest's last match; null until it is scanned and matched"
    )


class PodRef(View):
    namespace: str
    name: str


class ContainerRef(View):
    name: str
    image: str | None
    image_digest: str | None


class Process(View):
    id: int
    cluster_id: str
    node_name: str
    container_id: str | None
    pod_uid: str | None
    kind: str
    path: str
    sha256: str | None
    count: int
    first_seen_at: Timestamp | None
    last_seen_at: Timestamp | None
    samples: list[JSONObject] | None
    pod: PodRef | None
    workload: WorkloadRef | None
    container: ContainerRef | None


class Activity(View):
    """A file access on a watched path or a kernel operation of one container, aggregated per kind and target."""

    id: int
    cluster_id: str
    node_name: str
    container_id: str | None
    pod_uid: str | None
    kind: str = Field(description="file_write, file_read, file_rename, file_chmod, file_unlink, ptrace, ...")
    target: str = Field(description="the resolved path, or what the kind names (a mount point, a ptrace target)")
    upper_layer: bool | None
    detail: dict[str, str]
    count: int
    first_seen_at: Timestamp | None
    last_seen_at: Timestamp | None
    samples: list[JSONObject] | None
    pod: PodRef | None
    workload: WorkloadRef | None
    container: ContainerRef | None


# -- findings -----------------------------------------------------------------------------------


class RuntimeLabel(View):
    """Whether a package finding's code was seen running (vulnerable and malicious packages only)."""

    state: str
    watched_since: Timestamp | None
    running_finding_id: int | None


class FindingEvent(View):
    at: Timestamp | None
    from_status: str | None
    to_status: str
    severity: str | None
    reason: str | None
    actor: str | None


class Finding(Listing):
    columns: ClassVar[tuple[str, ...]] = (
        "id",
        "severity",
        "type",
        "status",
        "subject",
        "cluster_id",
        "namespace",
        "last_seen_at",
    )
    id: int
    type: str
    severity: str
    subject: str
    cluster_id: str | None
    namespace: str | None
    workload: WorkloadRef | None
    image_pk: int | None
    evidence: JSONObject | None
    status: str
    status_reason: str | None
    first_seen_at: Timestamp | None
    last_seen_at: Timestamp | None
    status_changed_at: Timestamp | None
    risk: Risk
    runtime: RuntimeLabel | None = None


class FindingDetail(Finding):
    history: list[FindingEvent]


class FindingChange(View):
    id: int
    kind: Literal["opened", "reopened", "severity_changed", "resolved", "suppressed"]
    at: Timestamp
    from_status: str | None
    to_status: str
    severity: str | None
    reason: str | None
    actor: str | None


class FindingStreamEvent(View):
    """The data of one ``event: finding`` of the findings stream (text/event-stream)."""

    event: FindingChange
    finding: Finding | None


# -- ingest -------------------------------------------------------------------------------------


class SensorHeartbeatAnswer(View):
    status: Literal["ok"]
    sensor_disabled: bool


# -- policy and integrity -----------------------------------------------------------------------


class MirrorRule(View):
    source: str
    mirror: str


class SignatureKey(View):
    name: str
    pem: str


class SignatureIdentity(View):
    issuer: str | None
    issuer_pattern: str | None
    subject: str | None
    subject_pattern: str | None


class SignatureRule(View):
    """What images under `pattern` must carry (in `namespace` only, when set)."""

    pattern: str
    namespace: str | None
    keys: list[SignatureKey]
    identities: list[SignatureIdentity]
    attestations: list[str]
    source_repositories: list[str]
    builder_ids: list[str]


class ClusterTrust(View):
    trusted: list[str]
    mirrors: list[MirrorRule]
    signatures: list[SignatureRule]


class TrustPolicy(View):
    trusted: list[str]
    mirrors: list[MirrorRule]
    signatures: list[SignatureRule]
    clusters: dict[str, ClusterTrust]
    revision: str


class ImageIntegrity(View):
    image: ImageInfo
    integrity: Integrity


class IntegrityRow(Image):
    pass


class ProvenanceFacts(View):
    """What a verified SLSA provenance says about the build."""

    builder_id: str | None
    source_repository: str | None
    source_revision: str | None
    build_trigger: str | None


class SignatureCheckView(View):
    """One signature or attestation of the digest: who signed it (a named key or a keyless identity), or why
    it fails."""

    artifact: str
    source: str  # referrer | tag
    kind: str  # signature | attestation
    result: str  # verified | invalid | unknown | absent
    signer: str | None
    key_id: str | None
    issuer: str | None
    identity: str | None
    why: str | None
    docker_reference: str | None
    signed_at: str | None
    predicate_type: str | None
    provenance: ProvenanceFacts | None


class WorkloadSignatureVerdict(View):
    """The signature rule's verdict for one workload running the image."""

    cluster_id: str
    namespace: str
    workload_kind: str
    workload_name: str
    status: str  # verified | violation | unknown | pending | not_required
    rule: str | None
    findings: list[str]
    signed_by: list[str]
    failing_checks: list[str]


class ImageSignatures(View):
    image: ImageInfo
    digest: str | None
    status: str  # verified | invalid | absent | unknown | pending (not checked yet)
    checked_at: str | None
    next_check_at: str | None
    referrers_api: bool | None
    reason: str | None
    checks: list[SignatureCheckView]
    workloads: list[WorkloadSignatureVerdict]


class SignaturePassReport(View):
    due: int
    checked: int
    statuses: dict[str, int]
    judged: int
    opened: int
    resolved: int
    requests: int
    seconds: Number


class IntegrityPassReport(View):
    due: int
    evaluated: int
    statuses: dict[str, int]
    opened: int
    resolved: int
    requests: int
    provenance_due: int  # digests whose provenance (OCI labels) is fetched after the pass
    seconds: Number
    verdict_seconds: Number  # until every verdict and finding of the pass was committed


# -- alerts -------------------------------------------------------------------------------------


class OutputKind(View):
    kind: str
    summary: str


class AlertOutput(View):
    id: int
    name: str
    kind: str
    threshold: str
    events: list[str]
    settings: JSONObject = Field(description="the output's settings, secrets masked")
    created_at: Timestamp
    created_by: str | None
    cursor: int | None = Field(description="the last finding event delivered (or given up)")
    dead_letters: int


class CreatedAlertOutput(AlertOutput):
    model_config = ConfigDict(extra="allow")  # a generated secret, shown once, under the kind's own key


class TestDelivery(View):
    delivered: bool
    output: str


class DeadLetter(View):
    id: int
    output_id: int | None
    output_name: str
    event_id: int
    finding_id: int | None
    event: str
    error: str
    attempts: int
    failed_at: Timestamp
    payload: JSONObject


class DeadLetterPage(View):
    """Newest first; ``next`` is the ``before`` of the following page (null at the end)."""

    items: list[DeadLetter]
    next: int | None


# -- contents -----------------------------------------------------------------------------------


class EcosystemCoverage(View):
    """One ecosystem a digest's packages needed, as the last match found the advisory database."""

    ecosystem: str = Field(description='as the packages were looked up, e.g. "Debian:12", "PyPI"')
    packages: int = Field(description="packages of the digest looked up in it")
    loaded: bool = Field(description="whether the database holds any advisory for it")
    records: int = Field(description="advisories (not withdrawn) for it")
    as_of: Timestamp | None = Field(description="the newest of those advisories' modified times")


class AdvisoryCoverage(View):
    """Whether "0 vulnerabilities" means checked: ``incomplete`` when an ecosystem the packages need has
    no advisories loaded."""

    status: Literal["complete", "incomplete"]
    ecosystems: list[EcosystemCoverage]


class ScanState(View):
    """An image's scan; a digest not queued yet, or an image without a digest, has fewer keys."""

    status: str
    error: str | None
    digest: str | None = None
    platform: str | None = None
    manifest_digest: str | None = None
    source: str | None = None
    os: JSONObject | str | None = None
    attempts: int | None = None
    enqueued_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    next_attempt_at: Timestamp | None = None
    files: int | None = None
    packages: int | None = None
    warnings: list[Any] | None = None
    incomplete: bool | None = None  # part of the image could not be read; the warnings say where
    unread_files: list[str] | None = None  # files the catalogers could not read; null: scanned before the record
    matched_revision: str | None = None
    matched_at: Timestamp | None = None
    match_warnings: list[Any] | None = None
    coverage: AdvisoryCoverage | None = None  # of the last match; null until one recorded it
    vulnerabilities: dict[str, int] | None = None


class PackageIdentity(View):
    """What names a stored package: its row id, purl type, name, version, purl and OSV ecosystem."""

    id: int
    type: str
    name: str
    version: str | None
    purl: str | None
    ecosystem: str | None


class Package(PackageIdentity):
    cataloger: str | None
    found_in: str | None
    source_name: str | None
    source_version: str | None
    arch: str | None
    files: list[Any] | None
    metadata: JSONObject | None


class VulnerableSeverity(View):
    level: str
    score: Number | None
    source: str | None


class VulnerablePackage(PackageIdentity):
    found_in: str | None
    source_name: str | None
    source_version: str | None


class Vulnerability(View):
    id: str
    advisory_ids: list[str] | None
    aliases: list[str] | None
    severity: VulnerableSeverity
    malicious: bool
    fixed_versions: list[str] | None
    summary: str | None
    links: list[Any] | None
    package: VulnerablePackage


class VulnerabilityPage(Page[Vulnerability]):
    matched_revision: str | None


class FunnelStage(View):
    count: int = Field(description="distinct vulnerabilities (advisory x package name and version)")
    severities: dict[str, int] = Field(
        description="by the advisory's level (a malicious package counts as critical): critical, high, medium, "
        "low, unknown, zeros included"
    )


class VulnerabilityFunnel(View):
    """All known vulnerabilities, those with a fixed version, and of those the ones observed running (the ones to
    fix first); beside them, those running without a fix."""

    all: FunnelStage
    with_fix: FunnelStage
    running: FunnelStage = Field(description="with a fix, and an open running_vulnerability finding")
    running_without_fix: FunnelStage


class ImageFunnel(View):
    image_id: int
    image: str
    digest: str | None
    scan_status: str = Field(description="the digest's scan; its vulnerabilities count only once it is done")
    funnel: VulnerabilityFunnel


class WorkloadFunnel(View):
    """A workload's funnel over the images of its pods' containers (a vulnerability two images share counts
    once), and each image's funnel with the workload's own running findings."""

    cluster_id: str
    namespace: str
    kind: str
    name: str
    funnel: VulnerabilityFunnel
    images: list[ImageFunnel]


class ImageFile(View):
    """A file (sha256, size, mode, executable) or a symlink (target)."""

    path: str
    kind: Literal["file", "symlink"]
    sha256: str | None = None
    size: int | None = None
    mode: str | None = None
    executable: bool | None = None
    target: str | None = None


class IntelStatus(View):
    path: str
    revision: str
    advisories: int
    loaded_at: Number | None = Field(description="Unix time of the last load")
    error: str | None


class ScanOverview(View):
    scans: dict[str, int]
    intel: IntelStatus


class ScannedImage(View):
    digest: str
    status: str
    error: str | None
    packages: int | None
    files: int | None


class ContentPassReport(View):
    queued: dict[str, int]
    scanned: list[ScannedImage]
    intel_revision: str
    intel_reloaded: bool
    matched: int
    findings_synced: bool
    opened: int
    resolved: int
    seconds: Number


class IntelReload(ContentPassReport):
    intel: IntelStatus


# -- runtime analysis ---------------------------------------------------------------------------


class Rule(View):
    id: str
    description: str
    severity: str = Field(description="the severity its findings take: the default unless an admin set another")
    default_severity: str
    mitre: str = Field(description="MITRE ATT&CK technique id")
    mitre_url: str
    finding_type: str
    kinds: list[str] = Field(description="the runtime record kinds or activity kinds the rule judges")
    updated_at: Timestamp | None = None
    updated_by: str | None = None


class RuleChange(View):
    """One change of a runtime rule's severity or allow-list."""

    id: int
    rule: str
    change: str
    at: Timestamp
    by: str


class AllowEntry(View):
    id: int
    rule: str
    cluster: str | None
    namespace: str | None
    workload: str | None
    labels: dict[str, str]
    reason: str
    created_at: Timestamp
    created_by: str | None


class PendingRecords(View):
    waiting_for_inventory: int
    waiting_for_scan: int
    scan_failed: int
    ready: int


class RuntimePassReport(View):
    digests_requeued: int
    analysed: int
    unjudged: int
    silenced: int
    changes: dict[str, int]
    seconds: Number


class RuntimeStatus(View):
    pending: PendingRecords
    pending_activities: PendingRecords = Field(
        description="queued activities (file accesses, kernel operations); judged after a failed scan too"
    )
    last_pass: RuntimePassReport | None


# -- search -------------------------------------------------------------------------------------


class SearchImage(View):
    id: int
    ref: str
    digest: str | None
    url: str  # the console page


class SearchWorkload(View):
    cluster_id: str
    cluster_name: str
    namespace: str
    kind: str
    name: str
    url: str


class SearchPod(View):
    cluster_id: str
    cluster_name: str
    namespace: str
    name: str
    uid: str
    phase: str
    workload: WorkloadRef
    url: str  # the workload's page, which lists its pods


class SearchPackageRef(View):
    type: str
    name: str
    version: str


class SearchPackage(View):
    package: SearchPackageRef
    image: SearchImage
    url: str


class SearchAdvisory(View):
    advisory: str
    severity: str
    package: SearchPackageRef
    image: SearchImage
    url: str


class SearchFinding(View):
    id: int
    type: str
    severity: str
    status: str
    subject: str
    cluster_id: str | None
    cluster_name: str | None
    url: str


class SearchGroup(View, Generic[T]):
    """The first matches of one kind; ``total`` counts them all, ``more`` those not listed."""

    items: list[T]
    total: int
    more: int


class SearchResults(View):
    """``GET /api/v1/search``: each kind's matches, every item with its console ``url``."""

    query: str
    total: int
    images: SearchGroup[SearchImage]
    workloads: SearchGroup[SearchWorkload]
    pods: SearchGroup[SearchPod]
    packages: SearchGroup[SearchPackage]
    advisories: SearchGroup[SearchAdvisory]
    findings: SearchGroup[SearchFinding]


# What `vigil get` lists: resource name -> row model (GET /api/v1/<name>, paged).
LISTINGS: dict[str, type[Listing]] = {
    "clusters": Cluster,
    "nodes": Node,
    "workloads": Workload,
    "pods": Pod,
    "images": Image,
    "findings": Finding,
}
