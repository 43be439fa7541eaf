"""OS detection from os-release, and the OSV ecosystem its packages' advisories
are published under."""

from __future__ import annotations

import re

from vigil.catalog.fsview import FileView
from vigil.catalog.model import OSRelease
from vigil.catalog.warnings import WarningSink

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")

_DEBIAN_CODENAMES = {
    "buzz": "1.1",
    "rex": "1.2",
    "bo": "1.3",
    "hamm": "2.0",
    "slink": "2.1",
    "potato": "2.2",
    "woody": "3.0",
    "sarge": "3.1",
    "etch": "4",
    "lenny": "5",
    "squeeze": "6",
    "wheezy": "7",
    "jessie": "8",
    "stretch": "9",
    "buster": "10",
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
}
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): shell-style assignments; quotes and backslash escapes."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _ASSIGNMENT.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote = value[0]
            value = value[1:-1]
            if quote == '"':
                value = re.sub(r"\\([\\$\"`])", r"\1", value)
        out[key] = value
    return out


def os_release_from_fields(fields: dict[str, str], source_file: str | None = None) -> OSRelease | None:
    os_id = fields.get("ID", "").strip().lower()
    if not os_id:
        return None
    return OSRelease(
        id=os_id,
        version_id=fields.get("VERSION_ID") or None,
        version_codename=fields.get("VERSION_CODENAME") or None,
        id_like=tuple(fields.get("ID_LIKE", "").split()),
        pretty_name=fields.get("PRETTY_NAME") or None,
        source_file=source_file,
    )


def detect_os(view: FileView, warnings: WarningSink) -> OSRelease | None:
    for path in OS_RELEASE_PATHS:
        real = view.regular_file(path)
        if real is None:
            continue
        try:
            text = view.read_bytes(real, limit=64 * 1024).decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            warnings.warn(path, None, f"os-release not readable: {exc}")
            continue
        found = os_release_from_fields(parse_os_release(text), path)
        if found is None:
            warnings.warn(path, None, "os-release has no ID; OS unknown")
            continue
        return found
    return None


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def os_ecosystem(os: OSRelease | None) -> str | None:
    """The OSV ecosystem string for the OS's own packages (osv-schema's
    ecosystems list), or None when advisories cannot be chosen."""
    if os is None:
        return None
    version = os.version_id
    if os.id == "debian":
        if not version and os.version_codename:
            version = _DEBIAN_CODENAMES.get(os.version_codename)
        return f"Debian:{version.split('.')[0]}" if version else "Debian"
    if os.id == "ubuntu":
        if not version:
            return "Ubuntu"
        # OSV keys Ubuntu LTS releases (even year, April) as "Ubuntu:22.04:LTS".
        m = re.match(r"^(\d+)\.04$", version)
        if m and int(m.group(1)) % 2 == 0:
            return f"Ubuntu:{version}:LTS"
        return f"Ubuntu:{version}"
    if os.id == "alpine":
        if not version:
            return "Alpine"
        return f"Alpine:v{_major_minor(re.split(r'[_-]', version)[0])}"
    if os.id in ("rocky",):
        return f"Rocky Linux:{version.split('.')[0]}" if version else "Rocky Linux"
    if os.id in ("almalinux",):
        return f"AlmaLinux:{version.split('.')[0]}" if version else "AlmaLinux"
    if os.id in ("rhel", "centos"):
        return "Red Hat"
    if os.id == "wolfi":
        return "Wolfi"
    if os.id == "chainguard":
        return "Chainguard"
    if os.id == "opensuse-leap":
        return f"openSUSE:Leap {version}" if version else "openSUSE"
    if os.id == "photon":
        return f"Photon OS:{version}" if version else "Photon OS"
    return None


def purl_distro(os: OSRelease | None) -> str | None:
    if os is None:
        return None
    return f"{os.id}-{os.version_id}" if os.version_id else os.id
