"""OSV ecosystem names: base name, release suffix, and package-name normalization.

``Debian:12`` is base ``Debian`` and release ``12``. Advisories are keyed by
(base, release, normalized name): a package from a Debian 12 image matches
``Debian:12`` records and release-less ``Debian`` records, never ``Debian:11``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

# Base names from the OSV schema's ecosystem list (osv-schema validation/schema.json).
OSV_ECOSYSTEMS = frozenset(
    {
        "AlmaLinux",
        "Alpaquita",
        "Alpine",
        "Android",
        "Azure Linux",
        "BellSoft Hardened Containers",
        "Bioconductor",
        "Bitnami",
        "Chainguard",
        "CleanStart",
        "ConanCenter",
        "CRAN",
        "crates.io",
        "Debian",
        "Docker Hardened Images",
        "Echo",
        "FreeBSD",
        "GHC",
        "GitHub Actions",
        "Go",
        "Hackage",
        "Hex",
        "Julia",
        "Kubernetes",
        "Linux",
        "Mageia",
        "Maven",
        "MinimOS",
        "npm",
        "NuGet",
        "opam",
        "openEuler",
        "openSUSE",
        "OSS-Fuzz",
        "Packagist",
        "Photon OS",
        "Pub",
        "PyPI",
        "Red Hat",
        "Rocky Linux",
        "Root",
        "RubyGems",
        "SUSE",
        "SwiftURL",
        "TuxCare",
        "Ubuntu",
        "VSCode",
        "Wolfi",
        "GIT",
    }
)


_BY_FOLDED_NAME = {name.casefold(): name for name in OSV_ECOSYSTEMS}


def suggest_ecosystem(ecosystem: str) -> str | None:
    """The OSV spelling of a name written in another case (``pypi`` -> ``PyPI``,
    ``debian:12`` -> ``Debian:12``), or None."""
    base, sep, release = ecosystem.strip().partition(":")
    known = _BY_FOLDED_NAME.get(base.casefold())
    return known + sep + release if known and known != base else None


class UnknownOsvEcosystemError(ValueError):
    def __init__(self, ecosystem: str) -> None:
        self.ecosystem = ecosystem
        self.suggestion = suggest_ecosystem(ecosystem)
        if self.suggestion:
            message = f"unknown ecosystem {ecosystem!r}; did you mean {self.suggestion}?"
        else:
            message = f"unknown ecosystem {ecosystem!r}: {ecosystem.split(':', 1)[0]!r} is not an OSV ecosystem name"
        super().__init__(message)


class EcosystemKey(NamedTuple):
    base: str
    release: str  # "" when the ecosystem has no release suffix


def _release(base: str, release: str) -> str:
    if base == "Ubuntu" and release.endswith(":LTS"):
        # "Ubuntu:22.04:LTS" and "Ubuntu:22.04" name the same release; the
        # image's os-release says 22.04, the advisory may add ":LTS".
        release = release[: -len(":LTS")]
    if base == "Alpine" and release[:1].isdigit():
        # OSV writes Alpine branches as "v3.19"; accept "3.19" for the same branch.
        release = "v" + release
    return release


def parse_ecosystem(ecosystem: str) -> EcosystemKey:
    """Split and check an OSV ecosystem string; raise for a name OSV does not know."""
    if not isinstance(ecosystem, str) or not ecosystem.strip():
        raise UnknownOsvEcosystemError(str(ecosystem))
    base, _, release = ecosystem.strip().partition(":")
    if base not in OSV_ECOSYSTEMS:
        raise UnknownOsvEcosystemError(ecosystem)
    return EcosystemKey(base, _release(base, release))


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _crate(name: str) -> str:
    # crates.io treats names case-insensitively and '-' and '_' as the same crate.
    return name.lower().replace("_", "-")


def _lower(name: str) -> str:
    return name.lower()


# Per ecosystem, how a package name is made comparable. Ecosystems not listed
# compare names exactly: Go module paths, npm (names are published in their
# exact case), Maven group:artifact, RPM names (NetworkManager), RubyGems.
NAME_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "PyPI": _pep503,
    "crates.io": _crate,
    "Debian": _lower,
    "Ubuntu": _lower,
    "Alpine": _lower,
    "Wolfi": _lower,
    "Chainguard": _lower,
    "NuGet": _lower,
    "Packagist": _lower,
    "Hex": _lower,
    "Pub": _lower,
}


def normalize_name(base: str, name: str) -> str:
    name = name.strip()
    normalizer = NAME_NORMALIZERS.get(base)
    return normalizer(name) if normalizer else name
