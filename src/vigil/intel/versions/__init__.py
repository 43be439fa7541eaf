"""Version ordering per ecosystem, registered in one table.

``compare(ecosystem, a, b)`` orders two versions the way the ecosystem's own
tools do. Ecosystems are named as in OSV (``Debian``, ``Debian:12``,
``Alpine:v3.19``, ``PyPI``, ``Go``, ``npm``, ``crates.io``, ``Maven``,
``Ubuntu:22.04``, ``Red Hat``, ``Rocky Linux``, ``SUSE``, ``RubyGems``,
``NuGet``, ``Packagist``...); the part after
the first ``:`` names a release and does not change the ordering, so the
scheme is chosen by the base name.
"""

from __future__ import annotations

from .apk import ApkScheme
from .base import EcosystemVersionError, InvalidVersionError, UnknownEcosystemError, VersionScheme
from .dpkg import DpkgScheme
from .maven import MavenScheme
from .nuget import NuGetScheme
from .packagist import PackagistScheme
from .pep440 import Pep440Scheme
from .rpm import RpmScheme
from .rubygems import RubyGemsScheme
from .semver import SemverScheme

DPKG = DpkgScheme()
APK = ApkScheme()
RPM = RpmScheme()
PEP440 = Pep440Scheme()
SEMVER = SemverScheme()
MAVEN = MavenScheme()
RUBYGEMS = RubyGemsScheme()
NUGET = NuGetScheme()
PACKAGIST = PackagistScheme()

# The one table: OSV ecosystem base name -> the scheme its versions follow.
ECOSYSTEM_SCHEMES: dict[str, VersionScheme] = {
    "Debian": DPKG,
    "Ubuntu": DPKG,
    "Alpine": APK,
    "Wolfi": APK,
    "Chainguard": APK,
    "Red Hat": RPM,
    "Rocky Linux": RPM,
    "AlmaLinux": RPM,
    "SUSE": RPM,
    "openSUSE": RPM,
    "openEuler": RPM,
    "Mageia": RPM,
    "Photon OS": RPM,
    "Azure Linux": RPM,
    "PyPI": PEP440,
    "Go": SEMVER,
    "npm": SEMVER,
    "crates.io": SEMVER,
    "Hex": SEMVER,
    "Pub": SEMVER,
    "Kubernetes": SEMVER,
    "Maven": MAVEN,
    "RubyGems": RUBYGEMS,
    "NuGet": NUGET,
    "Packagist": PACKAGIST,
}


def base_ecosystem(ecosystem: str) -> str:
    """``Debian:12`` -> ``Debian``; ``Maven:https://maven.google.com`` -> ``Maven``."""
    return ecosystem.split(":", 1)[0]


def scheme_for(ecosystem: str) -> VersionScheme:
    scheme = ECOSYSTEM_SCHEMES.get(base_ecosystem(ecosystem))
    if scheme is None:
        raise UnknownEcosystemError(ecosystem, list(ECOSYSTEM_SCHEMES))
    return scheme


def check_version(ecosystem: str, version: str) -> None:
    """Raise EcosystemVersionError naming the scheme if ``ecosystem`` has a scheme
    and it refuses ``version``; an ecosystem without one accepts any version."""
    scheme = ECOSYSTEM_SCHEMES.get(base_ecosystem(ecosystem))
    if scheme is None:
        return
    try:
        scheme.validate_installed(version)
    except InvalidVersionError as exc:
        raise EcosystemVersionError(ecosystem, exc) from None


def compare(ecosystem: str, a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b``.

    Raises UnknownEcosystemError for an ecosystem without a scheme and
    InvalidVersionError for a version the scheme refuses.
    """
    return scheme_for(ecosystem).compare(a, b)


__all__ = [
    "APK",
    "DPKG",
    "ECOSYSTEM_SCHEMES",
    "MAVEN",
    "NUGET",
    "PACKAGIST",
    "PEP440",
    "RPM",
    "RUBYGEMS",
    "SEMVER",
    "EcosystemVersionError",
    "InvalidVersionError",
    "UnknownEcosystemError",
    "VersionScheme",
    "base_ecosystem",
    "check_version",
    "compare",
    "scheme_for",
]
