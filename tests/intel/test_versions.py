"""Version ordering against the ecosystems' own vectors (../shared/data/versions)."""

from __future__ import annotations

import pytest

from vigil.intel.versions import (
    InvalidVersionError,
    UnknownEcosystemError,
    compare,
    scheme_for,
)

from .conftest import VERSION_VECTORS, require

# Which vector files hold which ecosystem's ordering. SemVer vectors are run
# for every ecosystem that orders by SemVer.
VECTOR_FILES = {
    "debian-versions.txt": ["Debian", "Ubuntu:22.04"],
    "debian-versions-generated.txt": ["Debian:12"],
    "alpine-versions.txt": ["Alpine:v3.19"],
    "alpine-versions-generated.txt": ["Alpine"],
    "pypi-versions.txt": ["PyPI"],
    "pypi-versions-generated.txt": ["PyPI"],
    "maven-versions.txt": ["Maven"],
    "maven-versions-generated.txt": ["Maven"],
    "semver-versions.txt": ["Go", "npm", "crates.io"],
    "redhat-versions.txt": ["Red Hat", "Rocky Linux", "SUSE"],
    "nuget-versions.txt": ["NuGet"],
    "packagist-versions-generated.txt": ["Packagist"],
    "rubygems-versions-generated.txt": ["RubyGems"],
}

# Lines we believe wrong, with why. Empty: every line holds.
DISPUTED: dict[tuple[str, str], str] = {}

OPS = {"<": -1, "=": 0, ">": 1}


def vector_lines(name: str) -> list[tuple[int, str, str, str]]:
    path = require(VERSION_VECTORS / name)
    out = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "//")):
            continue
        a, op, b = line.split(" ")
        out.append((lineno, a, op, b))
    return out


@pytest.mark.parametrize("name", sorted(VECTOR_FILES))
def test_every_vector_line_holds(name: str) -> None:
    lines = vector_lines(name)
    assert lines, f"{name} has no vectors"
    failures = []
    for ecosystem in VECTOR_FILES[name]:
        for lineno, a, op, b in lines:
            if (name, f"{a} {op} {b}") in DISPUTED:
                continue
            got, back = compare(ecosystem, a, b), compare(ecosystem, b, a)
            if got != OPS[op] or back != -OPS[op]:
                failures.append(f"{name}:{lineno} [{ecosystem}] {a} {op} {b}: compare gave {got}, reversed {back}")
    assert not failures, "\n".join(failures[:50])


def test_vector_files_are_all_mapped() -> None:
    present = {p.name for p in require(VERSION_VECTORS).glob("*.txt")}
    assert present - set(VECTOR_FILES) == set()


@pytest.mark.parametrize(
    ("ecosystem", "a", "b", "expected"),
    [
        ("Go", "v1.2.3+incompatible", "v1.2.3", 0),
        ("Go", "v2.0.0+incompatible", "v1.9.9", 1),
        ("Go", "v0.0.0-20210101000000-abcdefabcdef", "v0.0.0", -1),
        ("Debian:12", "1:1.0", "2.0", 1),
        ("Debian", "1.0~rc1", "1.0", -1),
        (
            "Ubuntu:22.04:LTS",
            "2.7.4+reloaded2-13ubuntu1",
            "2.7.4+reloaded2-13+deb9u1",
            -1,
        ),
        ("Alpine:v3.19", "1.2.3_rc1-r0", "1.2.3-r0", -1),
        ("PyPI", "0.1-bulbasaur", "0.0.1", -1),
        ("PyPI", "1.0.0", "1.0", 0),
        ("Maven", "5.3.9.RELEASE", "5.3.9", 0),
        ("Maven", "5.3.9.RELEASE", "5.3.10", -1),
        ("Maven:https://maven.google.com", "1.0-SNAPSHOT", "1.0", -1),
        ("Rocky Linux:9", "1:2.0-1.el9", "3.0-1.el9", 1),
        ("AlmaLinux", "1.0^git1", "1.0", 1),
        # RubyGems (Gem::Version): letters make a pre-release, '-' is '.pre.', trailing zeros drop
        ("RubyGems", "1.0.a", "1.0", -1),
        ("RubyGems", "1.0a", "1.0.a", 0),
        ("RubyGems", "1.0.0", "1", 0),
        ("RubyGems", "1.0-1", "1.0.pre.1", 0),
        ("RubyGems", "1.15.4", "1.15.10", -1),
        # NuGet: four numbers, labels without case, metadata ignored
        ("NuGet", "1.0", "1.0.0.0", 0),
        ("NuGet", "13.0.1", "13.0.1.1", -1),
        ("NuGet", "6.0.0-Preview.7", "6.0.0-preview.7+build.1", 0),
        ("NuGet", "6.0.0-rc.2", "6.0.0", -1),
        # Packagist: PHP version_compare without the 'v'
        ("Packagist", "v5.4.30", "5.4.31", -1),
        ("Packagist", "v5.4.31", "5.4.31", 0),
        ("Packagist", "1.0-dev", "1.0-alpha", -1),
        ("Packagist", "1.0.0-RC1", "1.0.0", -1),
        ("Packagist", "1.0-pl1", "1.0", 1),
    ],
)
def test_compare_per_ecosystem(ecosystem: str, a: str, b: str, expected: int) -> None:
    assert compare(ecosystem, a, b) == expected


def test_unknown_ecosystem_names_it() -> None:
    with pytest.raises(UnknownEcosystemError) as err:
        compare("Gentoo:stable", "1", "2")
    assert str(err.value).startswith(
        "unknown ecosystem 'Gentoo:stable': no version scheme is registered for 'Gentoo' (known: "
    )


@pytest.mark.parametrize(
    ("ecosystem", "version", "message"),
    [
        (
            "Go",
            "latest",
            "invalid SemVer version 'latest': expected [v]MAJOR[.MINOR[.PATCH...]][-PRERELEASE][+BUILD]",
        ),
        (
            "npm",
            "1.2.3 ",
            "invalid SemVer version '1.2.3 ': a version must be non-empty without surrounding whitespace",
        ),
        (
            "Debian",
            "a:1.0",
            "invalid dpkg version 'a:1.0': the epoch before ':' must be a number",
        ),
        (
            "Debian",
            "1.0_1",
            "invalid dpkg version '1.0_1': only letters, digits and . + ~ : - are allowed",
        ),
        (
            "Debian",
            "1:-1",
            "invalid dpkg version '1:-1': the upstream version must not be empty",
        ),
        ("PyPI", "", "invalid PEP 440 version '': a version must be non-empty"),
        (
            "RubyGems",
            "1.0 beta",
            "invalid RubyGems version '1.0 beta': expected digits and letters in '.'-separated segments",
        ),
        ("NuGet", "1.2.3.4.5", "invalid NuGet version '1.2.3.4.5': expected MAJOR[.MINOR[.PATCH[.REVISION]]]"),
        ("Packagist", "dev-main", "invalid Packagist version 'dev-main': expected [v]NUMBER[.NUMBER...]"),
    ],
)
def test_invalid_version_names_version_and_rule(ecosystem: str, version: str, message: str) -> None:
    with pytest.raises(InvalidVersionError) as err:
        compare(ecosystem, version, "1.0")
    assert str(err.value).startswith(message)


def test_one_scheme_per_family() -> None:
    assert scheme_for("Debian:12") is scheme_for("Ubuntu")
    assert scheme_for("Red Hat:rhel_aus:8.4::appstream") is scheme_for("SUSE:Linux Enterprise Server 15")
    assert scheme_for("Go") is scheme_for("crates.io") is scheme_for("npm")


@pytest.mark.parametrize("name", sorted(VECTOR_FILES))
def test_sort_keys_agree_with_compare(name: str) -> None:
    # Matching compares sort keys; they must order exactly as compare() does.
    ecosystem = VECTOR_FILES[name][0]
    scheme = scheme_for(ecosystem)
    failures = []
    for lineno, a, op, b in vector_lines(name):
        ka, kb = scheme.key(a), scheme.key(b)
        got = (ka > kb) - (ka < kb)
        if got != OPS[op] or (ka == kb) != (op == "="):
            failures.append(f"{name}:{lineno} {a} {op} {b}: keys give {got}")
    assert not failures, "\n".join(failures[:50])


def test_pep440_sort_keys_order_as_packaging_does() -> None:
    # PyPI's keys are plain tuples (compared in C) built from packaging's rules: every pair of
    # these releases, dev, pre, post and local versions orders and equals as Version does.
    from itertools import combinations

    from packaging.version import Version

    texts = ["1.0.dev1", "1.0a1.dev2", "1.0a1", "1.0b1", "1.0rc1", "1.0", "1.0.0", "1.0.post1.dev3", "1.0.post1"]
    texts += ["1.0+abc", "1.0+5", "1.0+abc.5", "1.0+1.a", "1!0.1", "0.9.9", "1.0.1a1", "2013.1", "1.0c1"]
    scheme = scheme_for("PyPI")
    wrong = []
    for a, b in combinations(texts, 2):
        va, vb, ka, kb = Version(a), Version(b), scheme.key(a), scheme.key(b)
        if (va < vb, va == vb, va > vb) != (ka < kb, ka == kb, ka > kb):
            wrong.append(f"{a} vs {b}")
    assert wrong == []
