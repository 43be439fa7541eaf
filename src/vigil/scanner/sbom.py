"""Software bills of materials of a scanned image: CycloneDX 1.6 JSON (with the
vulnerabilities found, built with cyclonedx-python-lib) and SPDX 2.3 JSON."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from packageurl import PackageURL

from vigil import __version__
from vigil.catalog import ImageContents, Package
from vigil.clock import utcnow
from vigil.intel.coverage import Coverage
from vigil.intel.vulnmatch import PackageMatch, finding_severity

OS_TYPES = {"deb", "apk", "rpm"}


@dataclass
class ScanReport:
    """What `vigil scan` found: the image's contents and the vulnerabilities of its packages."""

    target: str  # as the user named it: image reference, directory
    contents: ImageContents
    digest: str | None = None  # the manifest digest, for a registry image or OCI layout
    matches: list[PackageMatch] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # packages not matched, and why
    advisory_db: str | None = None
    coverage: Coverage | None = None  # None when no advisories were consulted (`vigil sbom`)


def _ref(i: int, pkg: Package) -> str:
    # Stable across runs of the same image: position + identity.
    h = hashlib.sha256(f"{pkg.type}\0{pkg.name}\0{pkg.version}\0{pkg.found_in}".encode()).hexdigest()[:12]
    return f"pkg-{i}-{h}"


def _created() -> datetime:
    return utcnow().replace(microsecond=0)


def _severity_source(source: str, advisory_id: str) -> str:
    return f"{source} of {advisory_id}" if source else "none (no advisory rates it)"


# -- CycloneDX ------------------------------------------------------------------------------------


def cyclonedx_json(report: ScanReport) -> str:
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.component_evidence import ComponentEvidence, Occurrence
    from cyclonedx.model.vulnerability import (
        BomTarget,
        Vulnerability,
        VulnerabilityRating,
        VulnerabilityReference,
        VulnerabilityScoreSource,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )
    from cyclonedx.output.json import JsonV1Dot6

    bom = Bom()
    bom.metadata.timestamp = _created()
    bom.metadata.component = Component(
        name=report.target, type=ComponentType.CONTAINER, version=report.digest, bom_ref="image"
    )
    if report.coverage is not None:
        # The vulnerability section is only as complete as the advisories behind it.
        bom.metadata.properties.add(Property(name="vigil:advisory-coverage", value=report.coverage.status))
        for eco in report.coverage.ecosystems:
            bom.metadata.properties.add(Property(name=f"vigil:advisory-coverage:{eco.ecosystem}", value=eco.describe()))
    if report.contents.os is not None:
        os = report.contents.os
        bom.components.add(
            Component(
                name=os.id,
                version=os.version_id,
                type=ComponentType.OPERATING_SYSTEM,
                bom_ref="os",
                description=os.pretty_name,
            )
        )
    refs: dict[int, str] = {}
    for i, pkg in enumerate(report.contents.packages):
        refs[i] = _ref(i, pkg)
        props = [Property(name="vigil:cataloger", value=pkg.cataloger)]
        if pkg.ecosystem:
            props.append(Property(name="vigil:ecosystem", value=pkg.ecosystem))
        if pkg.source_name:
            props.append(Property(name="vigil:source", value=f"{pkg.source_name} {pkg.source_version or ''}".strip()))
        bom.components.add(
            Component(
                name=pkg.name,
                version=pkg.version or None,
                type=ComponentType.LIBRARY if pkg.type not in OS_TYPES else ComponentType.APPLICATION,
                purl=PackageURL.from_string(pkg.purl),
                bom_ref=refs[i],
                properties=props,
                evidence=ComponentEvidence(occurrences=[Occurrence(location=pkg.found_in)]),
            )
        )
    # The image contains every component: the dependency graph's one level.
    bom.register_dependency(bom.metadata.component, list(bom.components))
    methods = {
        "CVSS_V4": VulnerabilityScoreSource.CVSS_V4,
        "CVSS_V3": VulnerabilityScoreSource.CVSS_V3_1,
        "CVSS_V2": VulnerabilityScoreSource.CVSS_V2,
    }
    osv = VulnerabilitySource(name="OSV")
    for pm in report.matches:
        for v in pm.vulnerabilities:
            level = finding_severity(v)
            rating = VulnerabilityRating(
                source=osv,
                severity=VulnerabilitySeverity(level),
                score=Decimal(str(v.severity.score)) if v.severity.score is not None else None,
                method=methods.get(v.severity.source, VulnerabilityScoreSource.OTHER if v.severity.source else None),
                vector=v.severity.vector,
            )
            fixed = ", ".join(v.fixed_versions)
            bom.vulnerabilities.add(
                Vulnerability(
                    bom_ref=f"{v.id}@{refs[pm.index]}",
                    id=v.id,
                    source=osv,
                    references=[VulnerabilityReference(id=a, source=osv) for a in v.aliases if a != v.id],
                    ratings=[rating],
                    description=v.summary or None,
                    recommendation=f"Upgrade to {fixed}" if fixed else None,
                    affects=[BomTarget(ref=refs[pm.index])],
                    properties=[
                        Property(
                            name="vigil:severity-source", value=_severity_source(v.severity.source, v.severity_from)
                        ),
                        *([Property(name="vigil:malicious", value="true")] if v.malicious else []),
                    ],
                )
            )
    return JsonV1Dot6(bom).output_as_string(indent=2)


# -- SPDX 2.3 -------------------------------------------------------------------------------------


def _spdx_id(text: str) -> str:
    return "SPDXRef-" + "".join(c if c.isalnum() or c in ".-" else "-" for c in text)


def spdx_json(report: ScanReport) -> str:
    created = _created()
    image_id = "SPDXRef-Image"
    name = report.target
    packages = [
        {
            "SPDXID": image_id,
            "name": name,
            "versionInfo": report.digest or "NOASSERTION",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
        }
    ]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}
    ]
    for i, pkg in enumerate(report.contents.packages):
        spdx_id = _spdx_id(_ref(i, pkg))
        entry = {
            "SPDXID": spdx_id,
            "name": pkg.name,
            "versionInfo": pkg.version or "NOASSERTION",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "sourceInfo": f"{pkg.cataloger} cataloger, found in {pkg.found_in}",
            "primaryPackagePurpose": "LIBRARY" if pkg.type not in OS_TYPES else "APPLICATION",
            "externalRefs": [
                {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": pkg.purl}
            ],
        }
        packages.append(entry)
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": spdx_id})
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        # Unique per document, as SPDX requires; the digest says which image it is about.
        "documentNamespace": f"https://spdx.vigil.dev/images/{uuid.uuid4()}",
        "creationInfo": {
            "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": [f"Tool: vigil-{__version__}"],
        },
        "packages": packages,
        "relationships": relationships,
    }
    if report.coverage is not None:
        doc["creationInfo"]["comment"] = (  # type: ignore[index]
            f"advisory coverage {report.coverage.status}: "
            + "; ".join(e.describe() for e in report.coverage.ecosystems)
        )
    return json.dumps(doc, indent=2)


FORMATS = {"cyclonedx": cyclonedx_json, "spdx": spdx_json}
