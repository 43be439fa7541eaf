"""The Pod Security Standards' "restricted" profile (baseline included), as Kubernetes defines it for
v1.30 and later, checked over a pod spec: one message per rule a pod or container breaks, empty if none.
https://kubernetes.io/docs/concepts/security/pod-security-standards/"""

from __future__ import annotations

RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
RESTRICTED_ADD_CAPABILITIES = {"NET_BIND_SERVICE"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
NAMESPACE_FIELDS = ("hostNetwork", "hostPID", "hostIPC")


def _seccomp_ok(profile: dict | None) -> bool:
    return profile is not None and profile.get("type") in ("RuntimeDefault", "Localhost")


def _selinux_problems(where: str, options: dict | None) -> list[str]:
    if not options:
        return []
    problems = []
    if options.get("type", "") not in SELINUX_TYPES:
        problems.append(f"{where}seLinuxOptions.type {options['type']}")
    problems += [f"{where}seLinuxOptions.{field} set" for field in ("user", "role") if options.get(field)]
    return problems


def _apparmor_ok(profile: dict | None) -> bool:
    return profile is None or profile.get("type") in ("RuntimeDefault", "Localhost")


def restricted_violations(spec: dict) -> list[str]:
    problems = [name for name in NAMESPACE_FIELDS if spec.get(name)]
    pod_ctx = spec.get("securityContext") or {}
    if (pod_ctx.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("windowsOptions.hostProcess")
    problems += _selinux_problems("pod ", pod_ctx.get("seLinuxOptions"))
    if not _apparmor_ok(pod_ctx.get("appArmorProfile")):
        problems.append("pod appArmorProfile")
    if pod_ctx.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    problems += [f"sysctl {s['name']}" for s in pod_ctx.get("sysctls", []) if s["name"] not in SAFE_SYSCTLS]
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        problems += [f"volume {volume['name']}: {kind}" for kind in sorted(kinds - RESTRICTED_VOLUME_TYPES)]

    containers = [*spec.get("initContainers", []), *spec.get("containers", []), *spec.get("ephemeralContainers", [])]
    for container in containers:
        where = f"container {container['name']}: "
        ctx = container.get("securityContext") or {}
        if ctx.get("privileged"):
            problems.append(where + "privileged")
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(where + "windowsOptions.hostProcess")
        caps = ctx.get("capabilities") or {}
        added = [c for c in caps.get("add", []) if c not in RESTRICTED_ADD_CAPABILITIES]
        problems += [where + f"capabilities.add {c}" for c in added]
        problems += [where + f"hostPort {p['hostPort']}" for p in container.get("ports", []) if p.get("hostPort")]
        if ctx.get("procMount", "Default") != "Default":
            problems.append(where + f"procMount {ctx['procMount']}")
        problems += _selinux_problems(where, ctx.get("seLinuxOptions"))
        if not _apparmor_ok(ctx.get("appArmorProfile")):
            problems.append(where + "appArmorProfile")
        if ctx.get("runAsUser") == 0:
            problems.append(where + "runAsUser 0")
        seccomp = ctx.get("seccompProfile") or pod_ctx.get("seccompProfile")
        if not _seccomp_ok(seccomp):
            problems.append(where + f"seccompProfile {(seccomp or {}).get('type', 'unset')}")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(where + "allowPrivilegeEscalation not false")
        if "ALL" not in caps.get("drop", []):
            problems.append(where + "capabilities.drop lacks ALL")
        if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
            problems.append(where + "runAsNonRoot not true")
    return problems
