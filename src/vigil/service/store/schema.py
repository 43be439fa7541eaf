"""The store's tables. Alembic migrations in ./migrations create and evolve them.

Inventory rows are keyed by the identities of DESIGN.md section 3 (cluster id, node
name, pod uid, container kind+name within a pod); images are global, shared by every
cluster that runs them, so that blast radius is a join rather than a copy.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)

clusters = Table(
    "clusters",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(253), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp),
    Column("controller_heartbeat_at", Timestamp),
    Column("controller_interval_s", Integer),
    Column("controller_version", String(64)),
    # When an inventory batch last changed the cluster: what a node's runtime policy is recomputed after.
    Column("inventory_changed_at", Timestamp),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    # admin | viewer | metrics | cluster | registration | enrolment | sensor | admission
    Column("role", String(16), nullable=False),
    # sha256 of the secret: tokens are 256-bit random, so a fast hash is enough and
    # lets every request look its token up by index.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE")),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp),
    Column("revoked_at", Timestamp),
    Column("max_uses", Integer),
    Column("uses", Integer, nullable=False, default=0),
    # A sensor credential speaks for this one node of its cluster only.
    Column("node_name", String(253)),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    # sha256 of the session id the browser holds: a leaked table does not yield live cookies.
    Column("id_hash", String(64), primary_key=True),
    # The API token a person signed in with; revoking or deleting it ends its sessions.
    Column("token_id", String(32), ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
)

client_certificates = Table(
    "client_certificates",
    metadata,
    # sha256 of the certificate's DER.
    Column("fingerprint", String(64), primary_key=True),
    # The credential the certificate is bound to (its URI SAN); deleting the credential deletes the record.
    Column("token_id", String(32), ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("serial", String(40), nullable=False),
    Column("issued_at", Timestamp, nullable=False),
    Column("not_after", Timestamp, nullable=False),
)

ingest_batches = Table(
    "ingest_batches",
    metadata,
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
    Column("batch_id", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("received_at", Timestamp, nullable=False),
)

nodes = Table(
    "nodes",
    metadata,
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(253), primary_key=True),
    Column("labels", Json, nullable=False),
    Column("kernel_version", String(256), nullable=False),
    Column("os_image", String(256), nullable=False),
    Column("container_runtime", String(256), nullable=False),
    Column("architecture", String(64), nullable=False),
    Column("kubelet_version", String(64), nullable=False),
    Column("conditions", Json, nullable=False),
    Column("sensor_disabled", Boolean, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

workloads = Table(
    "workloads",
    metadata,
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
    Column("namespace", String(63), primary_key=True),
    Column("kind", String(63), primary_key=True),
    Column("name", String(253), primary_key=True),
    Column("owner_chain", Json, nullable=False),
    Column("labels", Json, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

pods = Table(
    "pods",
    metadata,
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
    Column("uid", String(64), primary_key=True),
    Column("namespace", String(63), nullable=False),
    Column("name", String(253), nullable=False),
    Column("node_name", String(253)),
    Column("phase", String(16), nullable=False),
    Column("service_account", String(253), nullable=False),
    Column("workload_kind", String(63), nullable=False),
    Column("workload_name", String(253), nullable=False),
    Column("labels", Json, nullable=False),
    Column("privileged", Boolean, nullable=False),
    Column("host_pid", Boolean, nullable=False),
    Column("host_network", Boolean, nullable=False),
    Column("host_ipc", Boolean, nullable=False),
    Column("run_as_non_root", Boolean),
    Column("run_as_user", Integer),
    Column("added_capabilities", Json, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index("ix_pods_workload", "cluster_id", "namespace", "workload_kind", "workload_name"),
    Index("ix_pods_listing", "cluster_id", "namespace", "name", "uid"),
)

images = Table(
    "images",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Empty strings, not NULLs, for "no tag" and "digest not known yet", so that the
    # unique constraint identifies each image exactly once on every database.
    Column("registry", String(255), nullable=False),
    Column("repository", String(255), nullable=False),
    Column("tag", String(128), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("first_seen_at", Timestamp, nullable=False),
    UniqueConstraint("registry", "repository", "tag", "digest"),
)

containers = Table(
    "containers",
    metadata,
    Column("cluster_id", String(64), primary_key=True),
    Column("pod_uid", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("name", String(253), primary_key=True),
    Column("container_id", String(160)),
    Column("image", String(1024), nullable=False),
    Column("image_id", String(1024), nullable=False),
    Column("image_digest", String(80)),
    Column("image_pk", Integer, ForeignKey("images.id"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("restart_count", Integer, nullable=False),
    Index("ix_containers_image_pk", "image_pk"),
    Index("ix_containers_container_id", "container_id"),
)

findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # What makes two observations the same finding: unique, built by the analysis, never taken apart.
    Column("dedup_key", String(512), nullable=False, unique=True),
    # The finding's key, as vigil.model.findings defines it: the analysis that owns it, where it
    # holds (cluster, namespace, workload, image) and what it is about there.
    Column("family", String(16), nullable=False, server_default=""),
    Column("scope", String(512), nullable=False, server_default=""),
    Column("subject_key", Text, nullable=False, server_default=""),
    Column("type", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("subject", String(1024), nullable=False),
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE")),
    Column("namespace", String(63)),
    Column("workload_kind", String(63)),
    Column("workload_name", String(253)),
    Column("image_pk", Integer, ForeignKey("images.id")),
    Column("evidence", Json, nullable=False),
    # open | resolved | suppressed
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("first_seen_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("status_changed_at", Timestamp, nullable=False),
    Index("ix_findings_filter", "status", "severity", "type"),
    Index("ix_findings_cluster", "cluster_id", "namespace"),
    # A pass reads the open findings of its family, and settles those of one scope.
    Index("ix_findings_family", "family", "status", "scope"),
)

finding_events = Table(
    "finding_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("finding_id", Integer, ForeignKey("findings.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", Timestamp, nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("reason", Text),
    Column("actor", String(128), nullable=False),
    # Alert outputs tail this table by id: SQLite must never reuse an id.
    sqlite_autoincrement=True,
)

sensors = Table(
    "sensors",
    metadata,
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
    Column("node_name", String(253), primary_key=True),
    # running | failed | disabled, as the sensor last said
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("version", String(64), nullable=False),
    Column("kernel", String(256), nullable=False),
    Column("btf", Boolean, nullable=False),
    Column("events_seen", BigInteger, nullable=False),
    Column("events_lost", BigInteger, nullable=False),
    Column("events_filtered", BigInteger, nullable=False),
    Column("batches_spooled", BigInteger, nullable=False),
    Column("batches_dropped", BigInteger, nullable=False),
    Column("records_dropped", BigInteger, nullable=False),
    Column("interval_s", Integer, nullable=False),
    Column("heartbeat_at", Timestamp, nullable=False),
    # The node runtime policy revision the sensor enforces (None: none loaded), and why prevention is not
    # in force on the node, as its last heartbeat said.
    Column("policy_revision", String(64)),
    Column("enforcement_error", Text),
)

executions = Table(
    "executions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    Column("node_name", String(253), nullable=False),
    # '' for host processes and unread files, so the unique key holds on every database.
    Column("container_id", String(160), nullable=False),
    Column("pod_uid", String(64)),
    # executable | script | library
    Column("kind", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("first_seen_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("samples", Json, nullable=False),
    UniqueConstraint("cluster_id", "container_id", "kind", "sha256", "path", name="uq_executions_key"),
    Index("ix_executions_container", "cluster_id", "container_id"),
    Index("ix_executions_sha256", "sha256"),
)

# -- registry trust and image integrity -----------------------------------------------------------

trust_rules = Table(
    "trust_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # trusted | mirror
    Column("kind", String(16), nullable=False),
    # host[:port][/path-prefix]: the trusted pattern, or the mirror rule's source
    Column("pattern", String(512), nullable=False),
    # the mirror rule's target; '' for trusted rules, so the unique key holds on every database
    Column("mirror", String(512), nullable=False),
    # cluster id or name; '' for a global rule
    Column("cluster", String(253), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("kind", "pattern", "mirror", "cluster"),
)

image_integrity = Table(
    "image_integrity",
    metadata,
    # One verdict per image per cluster: trust and mirrors can differ between clusters.
    Column("image_pk", Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
    # verified | violation | unknown | untrusted | pending
    Column("status", String(16), nullable=False),
    # the finding types of a violation, comma-separated; '' otherwise
    Column("verdict", String(128), nullable=False),
    Column("evidence", Json, nullable=False),
    Column("registry_digest", String(80)),
    # when Vigil first saw the tag point at registry_digest (the "since" of tag_moved)
    Column("registry_digest_since", Timestamp),
    Column("policy_revision", String(32), nullable=False),
    Column("checked_at", Timestamp, nullable=False),
    Column("next_check_at", Timestamp, nullable=False),
    # consecutive unknown verdicts, for the retry backoff
    Column("failures", Integer, nullable=False),
    Index("ix_image_integrity_next_check", "next_check_at"),
)

image_provenance = Table(
    "image_provenance",
    metadata,
    # The manifest (or index) digest that runs; content-addressed, so recorded once.
    Column("digest", String(80), primary_key=True),
    Column("source", Text),
    Column("revision", String(256)),
    Column("created", String(64)),
    Column("authors", Text),
    Column("version", String(256)),
    Column("labels", Json, nullable=False),
    Column("recorded_at", Timestamp, nullable=False),
)

signature_rules = Table(
    "signature_rules",
    metadata,
    # What images under a pattern must carry (keys, identities, attestations, provenance), in one
    # cluster ('' every cluster) and namespace ('' every namespace).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pattern", String(512), nullable=False),
    Column("cluster", String(253), nullable=False),
    Column("namespace", String(253), nullable=False),
    # the rule as the trust policy document writes it (SignatureRuleDoc, without pattern and namespace)
    Column("requirement", Json, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("pattern", "cluster", "namespace", name="uq_signature_rules_place"),
)

image_signatures = Table(
    "image_signatures",
    metadata,
    # What a digest's signatures prove, checked once against every accepted key (material_revision):
    # content-addressed, so a verified digest is never asked about again.
    Column("digest", String(80), primary_key=True),
    Column("material_revision", String(32), nullable=False),
    # verified | invalid | absent | unknown (DigestSignatures.status)
    Column("status", String(16), nullable=False),
    Column("checks", Json, nullable=False),
    Column("checked_at", Timestamp, nullable=False),
    # None: verified, never checked again; else when a signature may have appeared (or the registry is back)
    Column("next_check_at", Timestamp),
    Column("failures", Integer, nullable=False),
)

# -- image contents and vulnerabilities -----------------------------------------------------------
# Contents are per manifest digest (content-addressed, so scanned once whoever runs it);
# image_scans is also the scanner's job queue (pending -> scanning -> done | failed).

image_scans = Table(
    "image_scans",
    metadata,
    # The running digest as the runtime reported it (an index or a platform manifest).
    Column("digest", String(80), primary_key=True),
    # pending | scanning | done | failed
    Column("status", String(16), nullable=False),
    # os/arch[/variant] chosen in an index: the architecture of a node running it, else linux/amd64
    Column("platform", String(64), nullable=False),
    Column("error", Text),
    Column("attempts", Integer, nullable=False),
    # who holds the job while scanning, and since when (a lease: a dead worker's job is retaken)
    Column("worker", String(128)),
    Column("enqueued_at", Timestamp, nullable=False),
    Column("started_at", Timestamp),
    Column("finished_at", Timestamp),
    Column("next_attempt_at", Timestamp),
    # what was read: the platform manifest's digest and the repository it was pulled from
    Column("manifest_digest", String(80)),
    Column("source", String(1024)),
    Column("os", Json),
    Column("file_count", Integer),
    Column("package_count", Integer),
    Column("warnings", Json, nullable=False),
    # part of the image was not read (a corrupt layer): the contents may be short; warnings say where
    Column("incomplete", Boolean, nullable=False, default=False, server_default=false()),
    # files the catalogers could not read (their packages are missing); NULL: scanned before the record
    Column("unread_files", Json),
    # the advisory database revision the packages were last matched against; NULL: not yet
    Column("matched_revision", String(64)),
    Column("matched_at", Timestamp),
    Column("match_warnings", Json, nullable=False),
    # the advisory coverage of that match, per ecosystem the packages needed; NULL: not matched since
    Column("coverage", Json),
    # name -> {version, packages, failed} of every cataloger the scan ran; NULL: scanned before
    # scans recorded it. A scanner whose catalogers make it stale queues the digest again.
    Column("catalogers", Json),
    Index("ix_image_scans_status", "status", "enqueued_at"),
)

image_files = Table(
    "image_files",
    metadata,
    Column("digest", String(80), ForeignKey("image_scans.digest", ondelete="CASCADE"), primary_key=True),
    Column("path", String(2048), primary_key=True),
    # file | symlink
    Column("kind", String(8), nullable=False),
    Column("sha256", String(64)),
    Column("size", BigInteger),
    Column("mode", Integer),
    Column("target", Text),
    # the runtime join: an executed file's sha256 -> the images that hold it
    Index("ix_image_files_sha256", "sha256"),
)

image_packages = Table(
    "image_packages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest", String(80), ForeignKey("image_scans.digest", ondelete="CASCADE"), nullable=False),
    # purl type: deb, apk, rpm, pypi, npm, golang, maven
    Column("type", String(16), nullable=False),
    Column("name", String(512), nullable=False),
    Column("version", String(256), nullable=False),
    Column("purl", Text, nullable=False),
    Column("ecosystem", String(64)),
    Column("cataloger", String(32), nullable=False),
    Column("found_in", Text, nullable=False),
    Column("source_name", String(512)),
    Column("source_version", String(256)),
    Column("arch", String(32)),
    Column("files", Json, nullable=False),
    Column("details", Json, nullable=False),
    Index("ix_image_packages_digest", "digest", "type", "name"),
)

image_vulnerabilities = Table(
    "image_vulnerabilities",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest", String(80), ForeignKey("image_scans.digest", ondelete="CASCADE"), nullable=False),
    Column("package_id", Integer, ForeignKey("image_packages.id", ondelete="CASCADE"), nullable=False),
    # the id shown first (the CVE when there is one) and the one findings are keyed by
    # (the smallest advisory id that matched: it only changes if another advisory joins)
    Column("vuln_id", String(128), nullable=False),
    Column("key_id", String(128), nullable=False),
    Column("advisory_ids", Json, nullable=False),
    Column("aliases", Json, nullable=False),
    # critical | high | medium | low | unknown
    Column("severity", String(16), nullable=False),
    Column("score", Float),
    Column("severity_source", String(32)),
    Column("fixed_versions", Json, nullable=False),
    Column("malicious", Boolean, nullable=False),
    Column("summary", Text, nullable=False),
    Column("links", Json, nullable=False),
    Index("ix_image_vulnerabilities_digest", "digest", "package_id"),
)

# -- alerts ---------------------------------------------------------------------------------------

alert_outputs = Table(
    "alert_outputs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    # a key of vigil.service.jobs.alerts.outputs.OUTPUTS: webhook | slack | syslog
    Column("kind", String(16), nullable=False),
    # the least severe finding it receives: critical | high | medium | low
    Column("threshold", String(16), nullable=False),
    # the event kinds it receives, e.g. ["opened", "escalated", "resolved"]
    Column("events", Json, nullable=False),
    # the kind's settings that may be shown (address, protocol, ...)
    Column("config", Json, nullable=False),
    # the kind's settings that are never logged or shown (signing secret, Slack URL)
    Column("secrets", Json, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("created_by", String(128), nullable=False),
)

alert_cursors = Table(
    "alert_cursors",
    metadata,
    Column("output_id", Integer, ForeignKey("alert_outputs.id", ondelete="CASCADE"), primary_key=True),
    # every finding_events.id up to position is handled; done holds handled [lo, hi] ranges above it
    Column("position", BigInteger, nullable=False),
    Column("done", Json, nullable=False),
    # the dispatcher (one per service replica) that may deliver for this output until lease_until
    Column("lease_owner", String(128)),
    Column("lease_until", Timestamp),
    Column("updated_at", Timestamp, nullable=False),
)

alert_dead_letters = Table(
    "alert_dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # kept (with the name) after the output is removed, as a record of what was never delivered
    Column("output_id", Integer, ForeignKey("alert_outputs.id", ondelete="SET NULL")),
    Column("output_name", String(64), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("finding_id", Integer),
    Column("event", String(16), nullable=False),
    # the alert as JSON (vigil.alert.v1), without any secret, so it can be replayed by hand
    Column("payload", Json, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failed_at", Timestamp, nullable=False),
    Index("ix_alert_dead_letters_output", "output_id", "id"),
)

# -- runtime analysis -----------------------------------------------------------------------------
# Runtime records wait here until their container is in the inventory and their image is scanned;
# ingest (and a changed scan or advisory match) enqueues, the runtime analyzer drains.

runtime_pending = Table(
    "runtime_pending",
    metadata,
    Column("execution_id", Integer, ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True),
    # bumped on every enqueue, so a record merged again while being analysed is analysed again
    Column("generation", Integer, nullable=False),
    Column("queued_at", Timestamp, nullable=False),
)

runtime_digest_state = Table(
    "runtime_digest_state",
    metadata,
    # What the analyzer last saw of a digest's scan; a change re-analyses its containers' records.
    Column("digest", String(80), primary_key=True),
    Column("scan_finished_at", Timestamp),
    Column("matched_revision", String(64)),
    Column("updated_at", Timestamp, nullable=False),
)

runtime_allow = Table(
    "runtime_allow",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # a suspicious_exec rule id, or '*' for every rule
    Column("rule", String(64), nullable=False),
    # '' matches any; cluster is an id or a name
    Column("cluster", String(253), nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("workload", String(253), nullable=False),
    # every pair must be among the pod's or workload's labels; {} matches any
    Column("labels", Json, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("created_by", String(128), nullable=False),
)

runtime_activities = Table(
    "runtime_activities",
    metadata,
    # File accesses on watched paths and kernel operations, merged per (container, kind, target) as
    # executions are per (container, kind, sha256, path).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    Column("node_name", String(253), nullable=False),
    # '' for host processes, so the unique key holds on every database.
    Column("container_id", String(160), nullable=False),
    Column("pod_uid", String(64)),
    # an ActivityKind: file_write | file_read | ... | memfd_create
    Column("kind", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("upper_layer", Boolean),
    Column("detail", Json, nullable=False),
    Column("first_seen_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("samples", Json, nullable=False),
    UniqueConstraint("cluster_id", "container_id", "kind", "target", name="uq_runtime_activities_key"),
    Index("ix_runtime_activities_container", "cluster_id", "container_id"),
)

runtime_activity_pending = Table(
    "runtime_activity_pending",
    metadata,
    Column("activity_id", Integer, ForeignKey("runtime_activities.id", ondelete="CASCADE"), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("queued_at", Timestamp, nullable=False),
)

runtime_rule_settings = Table(
    "runtime_rule_settings",
    metadata,
    # An admin's severity for a runtime rule (rules.RULES); a rule without a row has its default.
    Column("rule", String(64), primary_key=True),
    Column("severity", String(16), nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("updated_by", String(128), nullable=False),
)

runtime_rule_changes = Table(
    "runtime_rule_changes",
    metadata,
    # Every change of a runtime rule's severity or allow-list: who, when, what.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("change", Text, nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("by", String(128), nullable=False),
    Index("ix_runtime_rule_changes_rule", "rule"),
)

vulnerability_runtime = Table(
    "vulnerability_runtime",
    metadata,
    # Whether a vulnerable_package finding's code was seen running in its workload:
    # running | not_observed_running | watching (not watched long enough to say)
    Column("finding_id", Integer, ForeignKey("findings.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(24), nullable=False),
    Column("watched_since", Timestamp),
    Column("running_finding_id", Integer),
    Column("updated_at", Timestamp, nullable=False),
    Index("ix_vulnerability_runtime_state", "state"),
)

# -- admission control ----------------------------------------------------------------------------

enforcement_policy_revisions = Table(
    "enforcement_policy_revisions",
    metadata,
    # Every stored enforcement policy, kept as history; the newest row is the policy in force.
    Column("id", Integer, primary_key=True, autoincrement=True),
    # the document's own hash (EnforcementPolicy.revision), which decisions carry
    Column("revision", String(64), nullable=False),
    Column("document", Json, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("updated_by", String(128), nullable=False),
    sqlite_autoincrement=True,
)

admission_decisions = Table(
    "admission_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    # the AdmissionReview's request uid: a decision sent twice (a retried batch) is kept once
    Column("uid", String(128), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("operation", String(16), nullable=False),
    Column("kind", String(63), nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("name", String(253), nullable=False),
    Column("user", String(253), nullable=False),
    # allowed | denied | warned | audited | break_glass | exempt
    Column("outcome", String(16), nullable=False),
    Column("record", Json, nullable=False),  # the whole AdmissionDecisionRecord as the webhook sent it
    Column("received_at", Timestamp, nullable=False),
    UniqueConstraint("cluster_id", "uid"),
    Index("ix_admission_decisions_filter", "cluster_id", "namespace", "outcome"),
    sqlite_autoincrement=True,
)

# "changed since" and the findings stream read the history by time and by id.
Index("ix_finding_events_at", finding_events.c.at)

deny_list = Table(
    "deny_list",
    metadata,
    # File sha256s whose exec the deny_listed prevention rule stops (once the sensor has hashed the file).
    Column("sha256", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("added_by", String(128), nullable=False),
    Column("added_at", Timestamp, nullable=False),
)
deny_list_changes = Table(
    "deny_list_changes",
    metadata,
    # Every addition and removal, kept after the entry is gone.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False),
    Column("change", String(16), nullable=False),  # added | removed
    Column("reason", Text, nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("by", String(128), nullable=False),
    sqlite_autoincrement=True,
)
preventions = Table(
    "preventions",
    metadata,
    # What a sensor's kernel killed (enforce) or would have killed (audit), merged per
    # (container, rule, mode, operation, path) as activities are per (container, kind, target).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cluster_id", String(64), ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    Column("node_name", String(253), nullable=False),
    Column("container_id", String(160), nullable=False),  # '' for host processes
    Column("pod_uid", String(64)),
    Column("rule", String(32), nullable=False),  # a PreventionRule
    Column("mode", String(16), nullable=False),  # enforce | audit
    Column("operation", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("killed", Boolean, nullable=False),
    Column("sha256", String(64)),
    Column("upper_layer", Boolean),
    Column("policy_revision", String(64), nullable=False),
    Column("first_seen_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("samples", Json, nullable=False),
    UniqueConstraint("cluster_id", "container_id", "rule", "mode", "operation", "path", name="uq_preventions_key"),
    Index("ix_preventions_container", "cluster_id", "container_id"),
)

# -- replicas and retention -----------------------------------------------------------------------

job_leases = Table(
    "job_leases",
    metadata,
    # One row per background job that only one replica may run at a time: who runs it, and until
    # when its lease holds without a renewal (database time, so replicas' clocks need not agree).
    Column("job", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("acquired_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
)

# Retention deletes what is past its period by these, one bounded batch at a time.
Index("ix_executions_last_seen_at", executions.c.last_seen_at)
Index("ix_runtime_activities_last_seen_at", runtime_activities.c.last_seen_at)
Index("ix_admission_decisions_received_at", admission_decisions.c.received_at)
Index("ix_ingest_batches_received_at", ingest_batches.c.received_at)
Index("ix_findings_status_status_changed_at", findings.c.status, findings.c.status_changed_at)
