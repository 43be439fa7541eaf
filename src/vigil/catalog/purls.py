"""Package URLs (purl-spec) for each package type, built with packageurl-python."""

from __future__ import annotations

import re

from packageurl import PackageURL


def _qualifiers(**items: str | None) -> dict[str, str]:
    return {k: v for k, v in items.items() if v}


def os_package_purl(
    type_: str,
    namespace: str,
    name: str,
    version: str,
    *,
    arch: str | None,
    distro: str | None,
    upstream: str | None = None,
    epoch: str | None = None,
) -> str:
    return PackageURL(
        type=type_,
        namespace=namespace,
        name=name,
        version=version,
        qualifiers=_qualifiers(arch=arch, epoch=epoch, upstream=upstream, distro=distro),
    ).to_string()


def pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_purl(name: str, version: str) -> str:
    return PackageURL(type="pypi", name=pep503(name), version=version).to_string()


def npm_purl(name: str, version: str) -> str:
    namespace, _, short = name.rpartition("/") if name.startswith("@") else ("", "", name)
    return PackageURL(type="npm", namespace=namespace or None, name=short, version=version).to_string()


def golang_purl(module: str, version: str | None) -> str:
    namespace, _, name = module.rpartition("/")
    return PackageURL(type="golang", namespace=namespace or None, name=name, version=version or None).to_string()


def maven_purl(group: str | None, artifact: str, version: str | None) -> str:
    return PackageURL(type="maven", namespace=group or None, name=artifact, version=version or None).to_string()


def gem_purl(name: str, version: str, platform: str | None = None) -> str:
    return PackageURL(type="gem", name=name, version=version, qualifiers=_qualifiers(platform=platform)).to_string()


def composer_purl(name: str, version: str) -> str:
    namespace, _, short = name.rpartition("/")
    return PackageURL(type="composer", namespace=namespace or None, name=short, version=version).to_string()


def nuget_purl(name: str, version: str) -> str:
    return PackageURL(type="nuget", name=name, version=version).to_string()


def cargo_purl(name: str, version: str) -> str:
    return PackageURL(type="cargo", name=name, version=version).to_string()
