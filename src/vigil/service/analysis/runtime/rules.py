"""Runtime rules: one table, each rule with an id, a description, a severity (an admin may set
another), a MITRE ATT&CK technique, the finding type it raises, the record or activity kinds it
judges, and an allow-list per workload so that expected behaviour can be silenced.

Exec rules judge what ran (runtime records: executable, script, library) and raise
suspicious_exec; activity rules judge file accesses on watched paths and kernel operations
(file_write, file_read, ..., ptrace, mount, bpf_load) and raise file_tampering,
sensitive_file_read, container_escape_attempt, ptrace_attach and kernel_activity. The two sets of
kinds do not overlap, so a rule's kinds say which it judges.

Exec sessions: the sensor gives each exec's pid and parent pid (host pids). A process whose
parent is not a process of its container (and which is not the container's entry point) was
started by the container runtime from outside: ``kubectl exec`` / ``crictl exec`` /
``ctr task exec`` all enter through runc, whose exec process is the parent. Terminals cannot
be told from what the sensor sends today (no tty in the event); see docs/runtime-analysis.md.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.model.findings import FindingType, Severity
from vigil.service.analysis.runtime.model import (
    Activity,
    ActivitySample,
    ContainerProcesses,
    ExecRecord,
    Sample,
    Workload,
)
from vigil.service.analysis.runtime.paths import ImageFileSystem

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "pdksh", "csh", "tcsh", "fish"})
TEMP_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/")
# execveat(fd, "", AT_EMPTY_PATH) reports /dev/fd/N; /proc/self/fd/N and /proc/<pid>/fd/N
# name an open file (often a memfd); map paths of memfds read "/memfd:<name> (deleted)".
_FD_PATH = re.compile(r"^/(dev/fd|proc/(self|thread-self|\d+)/fd)/\d+$")


@dataclass(frozen=True, slots=True)
class Hit:
    reason: str
    sample: Sample | ActivitySample | None


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule may read besides the record: the container's processes and its image's files
    (None when the image's scan failed, so its files are not known)."""

    procs: ContainerProcesses
    image: ImageFileSystem | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    severity: str  # the default; an admin may set another (runtime_rule_settings)
    mitre: str  # the MITRE ATT&CK technique id the behaviour is
    kinds: frozenset[str]
    # An exec rule takes an ExecRecord, an activity rule an Activity (their kinds say which).
    check: Callable[[Any, Context], Hit | None]
    finding: FindingType = FindingType.SUSPICIOUS_EXEC

    def as_dict(self, severity: str | None = None) -> dict:
        return {
            "id": self.id,
            "description": self.description,
            "severity": severity or self.severity,
            "default_severity": self.severity,
            "mitre": self.mitre,
            "mitre_url": mitre_url(self.mitre),
            "finding_type": str(self.finding),
            "kinds": sorted(self.kinds),
        }


def mitre_url(technique: str) -> str:
    return "https://attack.mitre.org/techniques/" + technique.replace(".", "/") + "/"


def _is_shell(record: ExecRecord, s: Sample) -> bool:
    names = {posixpath.basename(record.path), posixpath.basename(s.filename)}
    if s.argv:
        argv0 = posixpath.basename(s.argv[0]).lstrip("-")  # a login shell's argv[0] is "-sh"
        names.add(argv0)
        if argv0 == "busybox" and len(s.argv) > 1:
            names.add(s.argv[1])  # `busybox sh`: the applet is the first argument
    return bool(names & SHELLS)


def shell_from_exec_session(record: ExecRecord, ctx: Context) -> Hit | None:
    for s in record.samples:
        if _is_shell(record, s) and ctx.procs.entered_from_outside(s):
            return Hit(
                f"shell {record.path} started by pid {s.ppid}, "
                "which is not a process of the container (an exec session)",
                s,
            )
    return None


def in_temp_dir(record: ExecRecord, ctx: Context) -> Hit | None:
    for d in TEMP_DIRS:
        if record.path.startswith(d):
            return Hit(
                f"{record.path} is in {d.rstrip('/')}, a world-writable scratch directory", record.first_sample()
            )
    return None


def memfd_or_deleted(record: ExecRecord, ctx: Context) -> Hit | None:
    p = record.path
    if p.startswith("/memfd:") or "memfd:" in posixpath.basename(p):
        return Hit(f"{p} is an anonymous memory file (memfd): the code never existed on disk", record.first_sample())
    if p.endswith(" (deleted)"):
        return Hit(f"{p} was deleted after it was started", record.first_sample())
    if _FD_PATH.match(p):
        return Hit(f"{p} was executed through a file descriptor (fexecve), typically a memfd", record.first_sample())
    return None


EXECUTED = frozenset({"executable", "script"})
ANY_CODE = frozenset({"executable", "script", "library"})

# -- activity rules -------------------------------------------------------------------------------

BINARY_DIRS = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/")
LIBRARY_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/")
ACCOUNT_FILES = frozenset(
    {"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers", "/root/.ssh/authorized_keys"}
)
ACCOUNT_DIRS = ("/etc/sudoers.d/",)
CREDENTIAL_FILES = frozenset({"/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-"})
PRIVATE_KEY_DIRS = ("/etc/ssl/private/",)
SERVICE_ACCOUNT_DIRS = (
    "/var/run/secrets/kubernetes.io/serviceaccount/",
    "/run/secrets/kubernetes.io/serviceaccount/",
)
KERNEL_CONTROL_DIRS = ("/proc/sys/kernel/", "/sys/kernel/", "/proc/sys/fs/binfmt_misc/")
KERNEL_CONTROL_FILES = frozenset({"/proc/sysrq-trigger"})
HOST_FILESYSTEMS = frozenset({"cgroup", "cgroup2"})
_ENVIRON = re.compile(r"^/proc/(\d+|self|thread-self)(/task/\d+)?/environ$")
WRITES = frozenset({"file_write", "file_rename", "file_chmod"})
CHANGES = WRITES | {"file_unlink"}


def _under(path: str, dirs: Iterable[str]) -> str | None:
    return next((d for d in dirs if path.startswith(d)), None)


def _is_account_file(path: str) -> bool:
    return path in ACCOUNT_FILES or _under(path, ACCOUNT_DIRS) is not None


def _verb(a: Activity) -> str:
    if a.kind == "file_rename":
        return f"renamed {a.detail.get('source', 'a file')} onto"
    if a.kind == "file_chmod":
        return f"made executable (mode {a.detail.get('mode', '?')})"
    return {"file_write": "wrote", "file_unlink": "deleted", "file_read": "read"}.get(a.kind, a.kind)


def account_file_modified(a: Activity, ctx: Context) -> Hit | None:
    if _is_account_file(a.target):
        return Hit(f"{_verb(a)} {a.target}, which says who may log in and as whom", a.first_sample())
    return None


def image_file_modified(a: Activity, ctx: Context) -> Hit | None:
    if ctx.image is None or _is_account_file(a.target):
        return None
    real = ctx.image.resolve(a.target)
    if real is None:
        return None
    where = "" if real == a.target else f" ({real} in the image)"
    return Hit(f"{_verb(a)} {a.target}{where}, a file of the image", a.first_sample())


def executable_dropped(a: Activity, ctx: Context) -> Hit | None:
    d = _under(a.target, BINARY_DIRS + LIBRARY_DIRS)
    if d is None or (ctx.image is not None and ctx.image.resolve(a.target) is not None):
        return None  # an image file: image-file-modified judges it
    what = "binary" if d in BINARY_DIRS else "library"
    return Hit(f"{_verb(a)} {a.target}: a new file in {d.rstrip('/')}, a {what} directory", a.first_sample())


def credential_file_read(a: Activity, ctx: Context) -> Hit | None:
    if a.target in CREDENTIAL_FILES:
        return Hit(f"read {a.target}, the password hashes", a.first_sample())
    return None


def private_key_read(a: Activity, ctx: Context) -> Hit | None:
    d = _under(a.target, PRIVATE_KEY_DIRS)
    if d is not None or (a.target.startswith("/root/.ssh/") and posixpath.basename(a.target).startswith("id_")):
        return Hit(f"read {a.target}, a private key", a.first_sample())
    return None


def service_account_token_read(a: Activity, ctx: Context) -> Hit | None:
    if _under(a.target, SERVICE_ACCOUNT_DIRS) is None or posixpath.basename(a.target) != "token":
        return None
    for s in a.samples:
        # The entry point and what it starts use the token by design; an unknown entry point is no evidence.
        if ctx.procs.in_entry_point_family(s.pid, s.ppid) is False:
            return Hit(
                f"read the service account token {a.target} from pid {s.pid} ({s.comm or s.exe}), "
                "which is not the container's entry point nor started by it",
                s,
            )
    return None


def other_process_environ_read(a: Activity, ctx: Context) -> Hit | None:
    m = _ENVIRON.match(a.target)
    if m is None or not m.group(1).isdigit():
        return None
    for s in a.samples:
        if int(m.group(1)) != s.pid:
            return Hit(f"pid {s.pid} ({s.comm or s.exe}) read {a.target}, another process's environment", s)
    return None


def kernel_control_write(a: Activity, ctx: Context) -> Hit | None:
    t = a.target
    if posixpath.basename(t) == "release_agent":
        return Hit(f"wrote {t}: a cgroup release agent runs as root on the host", a.first_sample())
    d = _under(t, KERNEL_CONTROL_DIRS)
    if d is not None or t in KERNEL_CONTROL_FILES:
        return Hit(f"wrote {t}: a host kernel setting, not the container's", a.first_sample())
    return None


def host_mount(a: Activity, ctx: Context) -> Hit | None:
    fstype, source = a.detail.get("fstype", ""), a.detail.get("source", "")
    if fstype in HOST_FILESYSTEMS:
        return Hit(f"mounted a {fstype} filesystem on {a.target}: the host's cgroup hierarchy", a.first_sample())
    if source.startswith("/dev/") and not source.startswith(("/dev/shm", "/dev/pts", "/dev/mqueue")):
        return Hit(f"mounted the device {source} on {a.target}: a host disk", a.first_sample())
    return None


def namespace_change(a: Activity, ctx: Context) -> Hit | None:
    flags = a.detail.get("flags", "")
    how = "entered other namespaces" if a.kind == "setns" else "created new namespaces"
    return Hit(f"{a.kind}: {how}" + (f" ({flags})" if flags else ""), a.first_sample())


def root_pivot(a: Activity, ctx: Context) -> Hit | None:
    return Hit(f"pivot_root to {a.target}: changed the process's root filesystem", a.first_sample())


def ptrace_attached(a: Activity, ctx: Context) -> Hit | None:
    return Hit(f"attached with ptrace to {a.target}: it can read and change that process", a.first_sample())


def bpf_loaded(a: Activity, ctx: Context) -> Hit | None:
    prog = a.detail.get("prog_type")
    return Hit("loaded a BPF program into the kernel" + (f" (type {prog})" if prog else ""), a.first_sample())


def module_loaded(a: Activity, ctx: Context) -> Hit | None:
    return Hit(f"loaded the kernel module {a.target}", a.first_sample())


_READ = frozenset({"file_read"})
_WRITE = frozenset({"file_write"})
RULES: tuple[Rule, ...] = (
    Rule(
        "shell-in-exec-session",
        "A shell was started in a running container through an exec session (kubectl exec, crictl/ctr exec): "
        "someone is working inside the container by hand",
        Severity.MEDIUM,
        "T1609",
        frozenset({"executable"}),
        shell_from_exec_session,
    ),
    Rule(
        "exec-from-temp-dir",
        "Code ran from /tmp, /var/tmp or /dev/shm: "
        "files there are written at run time, a common drop point for payloads",
        Severity.HIGH,
        "T1105",
        ANY_CODE,
        in_temp_dir,
    ),
    Rule(
        "exec-from-memfd-or-deleted",
        "Code ran from an anonymous memory file (memfd, fexecve) or a file deleted after start: fileless execution",
        Severity.HIGH,
        "T1620",
        ANY_CODE,
        memfd_or_deleted,
    ),
    Rule(
        "executable-dropped",
        "A new file was written, renamed or made executable in a binary or library directory: "
        "a tool or payload brought into the container",
        Severity.HIGH,
        "T1105",
        WRITES,
        executable_dropped,
        FindingType.FILE_TAMPERING,
    ),
    Rule(
        "image-file-modified",
        "A file of the image was written, replaced, made executable or deleted in the running container",
        Severity.HIGH,
        "T1554",
        CHANGES,
        image_file_modified,
        FindingType.FILE_TAMPERING,
    ),
    Rule(
        "account-file-modified",
        "/etc/passwd, /etc/shadow, /etc/group, sudoers or root's authorized_keys was written or replaced",
        Severity.HIGH,
        "T1098",
        CHANGES,
        account_file_modified,
        FindingType.FILE_TAMPERING,
    ),
    Rule(
        "credential-file-read",
        "/etc/shadow or /etc/gshadow was read: the password hashes",
        Severity.HIGH,
        "T1003.008",
        _READ,
        credential_file_read,
        FindingType.SENSITIVE_FILE_READ,
    ),
    Rule(
        "private-key-read",
        "A private key under /etc/ssl/private or root's SSH key was read",
        Severity.HIGH,
        "T1552.004",
        _READ,
        private_key_read,
        FindingType.SENSITIVE_FILE_READ,
    ),
    Rule(
        "service-account-token-read",
        "The service account token was read by a process other than the container's entry point and its children "
        "(such as a shell of an exec session)",
        Severity.HIGH,
        "T1528",
        _READ,
        service_account_token_read,
        FindingType.SENSITIVE_FILE_READ,
    ),
    Rule(
        "process-environ-read",
        "/proc/<pid>/environ of another process was read: environment variables often hold credentials",
        Severity.HIGH,
        "T1552.001",
        _READ,
        other_process_environ_read,
        FindingType.SENSITIVE_FILE_READ,
    ),
    Rule(
        "kernel-control-write",
        "A cgroup release_agent, /proc/sys/kernel (core_pattern), /sys/kernel, binfmt_misc or sysrq-trigger "
        "was written: host kernel settings that run code outside the container",
        Severity.CRITICAL,
        "T1611",
        _WRITE,
        kernel_control_write,
        FindingType.CONTAINER_ESCAPE_ATTEMPT,
    ),
    Rule(
        "host-mount",
        "A host device or a cgroup filesystem was mounted",
        Severity.CRITICAL,
        "T1611",
        frozenset({"mount"}),
        host_mount,
        FindingType.CONTAINER_ESCAPE_ATTEMPT,
    ),
    Rule(
        "namespace-change",
        "setns or unshare: a process entered other namespaces or created new ones",
        Severity.CRITICAL,
        "T1611",
        frozenset({"setns", "unshare"}),
        namespace_change,
        FindingType.CONTAINER_ESCAPE_ATTEMPT,
    ),
    Rule(
        "pivot-root",
        "pivot_root in a running container: a process changed its root filesystem",
        Severity.CRITICAL,
        "T1611",
        frozenset({"pivot_root"}),
        root_pivot,
        FindingType.CONTAINER_ESCAPE_ATTEMPT,
    ),
    Rule(
        "ptrace-attach",
        "A process attached to another with ptrace (PTRACE_ATTACH/SEIZE): it can read and inject into it",
        Severity.HIGH,
        "T1055.008",
        frozenset({"ptrace"}),
        ptrace_attached,
        FindingType.PTRACE_ATTACH,
    ),
    Rule(
        "bpf-program-load",
        "A BPF program was loaded into the kernel from a container",
        Severity.HIGH,
        "T1014",
        frozenset({"bpf_load"}),
        bpf_loaded,
        FindingType.KERNEL_ACTIVITY,
    ),
    Rule(
        "kernel-module-load",
        "A kernel module was loaded from a container (where the kernel traces init_module/finit_module)",
        Severity.HIGH,
        "T1547.006",
        frozenset({"module_load"}),
        module_loaded,
        FindingType.KERNEL_ACTIVITY,
    ),
)
RULE_IDS = tuple(r.id for r in RULES)
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
EXEC_KINDS = ANY_CODE


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """Silences ``rule`` ('*': every rule) for workloads that match every given field."""

    id: int
    rule: str
    cluster: str = ""
    namespace: str = ""
    workload: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""

    def matches(self, rule_id: str, w: Workload) -> bool:
        if self.rule not in ("*", rule_id):
            return False
        if self.cluster and self.cluster not in (w.cluster_id, w.cluster_name):
            return False
        if self.namespace and self.namespace != w.namespace:
            return False
        if self.workload and self.workload != w.name:
            return False
        return all(w.labels.get(k) == v for k, v in self.labels.items())


def check_allow_entry(rule: str, labels: Mapping[str, str]) -> None:
    """Refuse an entry naming an unknown rule (a typo would silence nothing, silently)."""
    if rule != "*" and rule not in RULE_IDS:
        raise ValueError(f"rule {rule!r} is not one of *, {', '.join(RULE_IDS)}")
    for k, v in labels.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k:
            raise ValueError(f"label {k!r}={v!r}: labels are non-empty string keys with string values")


def allowed_by(entries: Iterable[AllowEntry], rule_id: str, w: Workload) -> AllowEntry | None:
    return next((e for e in entries if e.matches(rule_id, w)), None)
