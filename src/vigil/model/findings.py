"""The findings vocabulary: families, types, severities, statuses and the scope of a finding.

Every unit and view spells these the same way by importing them from here. The stored strings
are the enum values, so a row, an API answer and an alert all carry the same words.

A finding is identified by (family, type, scope, subject key):

- ``scope`` is where it holds: the cluster, namespace, workload and image it is about
  (``workload_scope``). A pass that evaluates one workload running one image settles the
  findings of that scope.
- the subject key is what it is about inside its scope and type: nothing more for integrity
  (the type says it), the package and advisory for contents, the detection for runtime, the
  object and its set of violations for admission.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Family(StrEnum):
    """Which analysis opens and resolves a finding."""

    INTEGRITY = "integrity"  # the trusted registry's answer about a running image
    CONTENTS = "contents"  # an image's packages against the advisories
    RUNTIME = "runtime"  # what ran, judged against its image
    ADMISSION = "admission"  # what the admission webhook refused, warned about, recorded or let through
    SIGNATURES = "signatures"  # a running digest's signatures and provenance against the trust policy


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"
    UNKNOWN = "unknown"  # the source gave no rating (an advisory without a score)

    @property
    def rank(self) -> int:
        """Higher is more severe; unknown ranks lowest."""
        return _RANK[self]

    def raised(self) -> Severity:
        """One level up (critical stays critical). Unknown is taken as low, so it becomes medium:
        evidence that the code runs makes an unrated advisory worth a look."""
        start = Severity.LOW if self is Severity.UNKNOWN else self
        return next((s for s in reversed(SEVERITIES) if s.rank > start.rank), Severity.CRITICAL)


_RANK = {
    Severity.UNKNOWN: 0,
    Severity.INFO: 1,
    Severity.LOW: 2,
    Severity.MEDIUM: 3,
    Severity.HIGH: 4,
    Severity.CRITICAL: 5,
}
# Most severe first: the order of every listing and count.
SEVERITIES: tuple[Severity, ...] = tuple(sorted(Severity, key=lambda s: -s.rank))
# The levels views count one by one (info and unknown are shown only in listings).
RATED_SEVERITIES: tuple[Severity, ...] = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)
# The levels an advisory can have (no advisory is rated info).
ADVISORY_SEVERITIES: tuple[Severity, ...] = RATED_SEVERITIES + (Severity.UNKNOWN,)


def severity_rank(value: str) -> int:
    """The rank of a stored severity; a string that is no severity ranks below unknown."""
    try:
        return Severity(value).rank
    except ValueError:
        return -1


def raise_severity(value: str) -> Severity:
    try:
        return Severity(value).raised()
    except ValueError:
        raise ValueError(f"severity {value!r} is not one of {', '.join(SEVERITIES)}") from None


class FindingStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    SUPPRESSED = "suppressed"


FINDING_STATUSES: tuple[FindingStatus, ...] = tuple(FindingStatus)


class FindingType(StrEnum):
    UNTRUSTED_REGISTRY = "untrusted_registry"
    DIGEST_MISMATCH = "digest_mismatch"
    TAG_MOVED = "tag_moved"
    ARTIFACT_MISSING = "artifact_missing"
    VULNERABLE_PACKAGE = "vulnerable_package"
    MALICIOUS_PACKAGE = "malicious_package"
    RUNNING_VULNERABILITY = "running_vulnerability"
    RUNTIME_DRIFT = "runtime_drift"
    TAMPERED_BINARY = "tampered_binary"
    SUSPICIOUS_EXEC = "suspicious_exec"
    FILE_TAMPERING = "file_tampering"
    SENSITIVE_FILE_READ = "sensitive_file_read"
    CONTAINER_ESCAPE_ATTEMPT = "container_escape_attempt"
    PTRACE_ATTACH = "ptrace_attach"
    KERNEL_ACTIVITY = "kernel_activity"
    PREVENTED_EXECUTION = "prevented_execution"
    PREVENTED_ESCAPE = "prevented_escape"
    ADMISSION_DENIED = "admission_denied"
    ADMISSION_WARNED = "admission_warned"
    ADMISSION_AUDITED = "admission_audited"
    BREAK_GLASS_USED = "break_glass_used"
    UNSIGNED_IMAGE = "unsigned_image"
    SIGNATURE_INVALID = "signature_invalid"
    PROVENANCE_MISMATCH = "provenance_mismatch"

    @property
    def family(self) -> Family:
        return _TYPES[self].family

    @property
    def default_severity(self) -> Severity | None:
        return _TYPES[self].severity

    @property
    def heading(self) -> str:
        """What a person calls the finding type (str.title is taken)."""
        return _TYPES[self].title or self.value.replace("_", " ").capitalize()

    @property
    def explanation(self) -> str:
        return _TYPES[self].explanation

    def severity(self) -> Severity:
        """The default severity of a type that has one (every type but suspicious_exec)."""
        severity = _TYPES[self].severity
        if severity is None:
            raise ValueError(f"finding type {self.value!r} has no severity of its own: each observation brings one")
        return severity


@dataclass(frozen=True, slots=True)
class TypeInfo:
    family: Family
    # The severity an observation of this type has unless it brings its own: an advisory's level
    # (vulnerable_package; unknown without one), raised one level when the code runs
    # (running_vulnerability). None: every observation brings its own (a rule's severity).
    severity: Severity | None
    title: str = ""
    # What the finding means and what to do, in a sentence or two (the console shows it with the finding).
    explanation: str = ""


_TYPES = {
    FindingType.UNTRUSTED_REGISTRY: TypeInfo(Family.INTEGRITY, Severity.HIGH),
    FindingType.DIGEST_MISMATCH: TypeInfo(Family.INTEGRITY, Severity.CRITICAL),
    FindingType.TAG_MOVED: TypeInfo(Family.INTEGRITY, Severity.MEDIUM),
    FindingType.ARTIFACT_MISSING: TypeInfo(Family.INTEGRITY, Severity.HIGH),
    FindingType.VULNERABLE_PACKAGE: TypeInfo(Family.CONTENTS, Severity.UNKNOWN),
    FindingType.MALICIOUS_PACKAGE: TypeInfo(Family.CONTENTS, Severity.CRITICAL),
    FindingType.RUNNING_VULNERABILITY: TypeInfo(Family.RUNTIME, Severity.UNKNOWN.raised()),
    FindingType.RUNTIME_DRIFT: TypeInfo(Family.RUNTIME, Severity.HIGH),
    FindingType.TAMPERED_BINARY: TypeInfo(Family.RUNTIME, Severity.CRITICAL),
    FindingType.SUSPICIOUS_EXEC: TypeInfo(Family.RUNTIME, None),
    # Activity rules (file accesses and kernel operations): each rule brings its severity (an admin may
    # change it); these are the defaults of the type's rules.
    FindingType.FILE_TAMPERING: TypeInfo(
        Family.RUNTIME,
        Severity.HIGH,
        "File tampering",
        "A file of the image was changed, or a new executable written, inside a running container: "
        "containers are immutable, so this is a payload or a persistence step. Rebuild instead of patching in place.",
    ),
    FindingType.SENSITIVE_FILE_READ: TypeInfo(
        Family.RUNTIME,
        Severity.HIGH,
        "Sensitive file read",
        "Password hashes, a private key, the service account token (by a process that is not the container's "
        "entry point) or another process's environment was read: credential access.",
    ),
    FindingType.CONTAINER_ESCAPE_ATTEMPT: TypeInfo(
        Family.RUNTIME,
        Severity.CRITICAL,
        "Container escape attempt",
        "A host kernel setting was written, a host device or cgroupfs mounted, or namespaces or the root changed: "
        "the steps of breaking out of the container onto its node.",
    ),
    FindingType.PTRACE_ATTACH: TypeInfo(
        Family.RUNTIME,
        Severity.HIGH,
        "Process injection (ptrace)",
        "A process attached to another with ptrace, which lets it read the other's memory and run code in it.",
    ),
    FindingType.KERNEL_ACTIVITY: TypeInfo(
        Family.RUNTIME,
        Severity.HIGH,
        "Kernel code loaded",
        "A BPF program or a kernel module was loaded from a container: code running in the node's kernel.",
    ),
    # What a sensor's kernel killed (enforce) or would have killed (audit) under the runtime prevention rules;
    # the title and the evidence say which.
    FindingType.PREVENTED_EXECUTION: TypeInfo(
        Family.RUNTIME,
        Severity.HIGH,
        "Execution prevented",
        "A program that was not in the image (written after the container started, a memfd, a deleted file, a "
        "file under /tmp, /dev/shm or /var/tmp, or one whose sha256 is on the deny list) was executed. In enforce "
        "mode the kernel killed it before its first instruction; in audit mode it ran and would have been killed. "
        "Find out who put it there.",
    ),
    FindingType.PREVENTED_ESCAPE: TypeInfo(
        Family.RUNTIME,
        Severity.CRITICAL,
        "Escape attempt stopped",
        "A process tried a container escape step (mount, unshare, setns, a host kernel setting). In enforce mode "
        "the kernel killed it, though the system call itself completed; in audit mode it went on and would have "
        "been killed.",
    ),
    # What the webhook decided from the enforcement policy: a denial means someone tried to run what
    # the policy refuses; an audit is what enforce mode would have refused.
    FindingType.ADMISSION_DENIED: TypeInfo(Family.ADMISSION, Severity.HIGH),
    FindingType.ADMISSION_WARNED: TypeInfo(Family.ADMISSION, Severity.MEDIUM),
    FindingType.ADMISSION_AUDITED: TypeInfo(Family.ADMISSION, Severity.LOW),
    FindingType.BREAK_GLASS_USED: TypeInfo(Family.ADMISSION, Severity.HIGH),
    FindingType.UNSIGNED_IMAGE: TypeInfo(
        Family.SIGNATURES,
        Severity.HIGH,
        "Unsigned image",
        "The trust policy requires a signature (or an attestation) by named keys or identities, and none of them "
        "signed the digest that runs. Sign it in CI, or name the signer in the policy.",
    ),
    FindingType.SIGNATURE_INVALID: TypeInfo(
        Family.SIGNATURES,
        Severity.CRITICAL,
        "Invalid signature",
        "A signature or attestation of the running digest is present and fails a check (altered content, another "
        "digest, a broken certificate chain): someone may have tampered with the image or its signature.",
    ),
    FindingType.PROVENANCE_MISMATCH: TypeInfo(
        Family.SIGNATURES,
        Severity.HIGH,
        "Provenance mismatch",
        "The image's signed build provenance names a source repository or a builder the trust policy does not "
        "accept: it was not built where it should have been.",
    ),
}

FINDING_TYPES: tuple[FindingType, ...] = tuple(FindingType)


def types_of(family: Family) -> tuple[FindingType, ...]:
    return tuple(t for t in FindingType if t.family is family)


INTEGRITY_TYPES = types_of(Family.INTEGRITY)
PACKAGE_TYPES = types_of(Family.CONTENTS)
RUNTIME_TYPES = types_of(Family.RUNTIME)
ADMISSION_TYPES = types_of(Family.ADMISSION)
SIGNATURE_TYPES = types_of(Family.SIGNATURES)
# What the registry's answer can contradict; an untrusted registry is decided before it is asked.
REGISTRY_VIOLATION_TYPES = (FindingType.DIGEST_MISMATCH, FindingType.TAG_MOVED, FindingType.ARTIFACT_MISSING)
# Findings about a package's advisories: in the image, or observed running.
VULNERABILITY_TYPES = PACKAGE_TYPES + (FindingType.RUNNING_VULNERABILITY,)


def family_of(finding_type: str) -> Family:
    try:
        return FindingType(finding_type).family
    except ValueError:
        raise ValueError(f"finding type {finding_type!r} is not one of {', '.join(FINDING_TYPES)}") from None


def workload_scope(
    cluster_id: str | None,
    namespace: str | None,
    workload_kind: str | None,
    workload_name: str | None,
    image_pk: int | None,
) -> str:
    """The scope of a finding about a workload running an image (any part may be absent).

    Kubernetes names hold no ``/`` or ``@``, so distinct scopes give distinct strings; the string
    is compared whole and never taken apart."""
    image = "" if image_pk is None else str(image_pk)
    return f"{cluster_id or ''}/{namespace or ''}/{workload_kind or ''}/{workload_name or ''}@{image}"
