"""The parts of `vigil scan -o json` that another command reads back: which image was scanned (its manifest
digest) and the vulnerabilities and malicious packages found in it.

`vigil image check --scan-report` takes them as an image's scan facts, so a pipeline that scans and then
checks gets the decision a cluster gets from the service's scan of the same digest. Only these fields are
typed; the rest of the document (packages, coverage, summary) is the scan's own and is not read.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from vigil.model.findings import Severity

MAX_SCAN_REPORT_VULNERABILITIES = 200_000


class _Read(BaseModel):
    # The scan's document carries more than is read here; those fields are its own, not errors.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ScannedPackage(_Read):
    name: Annotated[str, Field(min_length=1, max_length=512)]


class ScannedSeverity(_Read):
    level: str


class ScannedVulnerability(_Read):
    id: Annotated[str, Field(min_length=1, max_length=256)]
    package: ScannedPackage
    severity: ScannedSeverity
    malicious: bool = False
    fixed_versions: list[str] = Field(default_factory=list)

    @property
    def level(self) -> Severity:
        """The rating as a Severity; a level this Vigil does not know counts as unknown."""
        return Severity(self.severity.level) if self.severity.level in Severity._value2member_map_ else Severity.UNKNOWN


class ScanReportFacts(_Read):
    target: str
    digest: str | None = None
    vulnerabilities: Annotated[list[ScannedVulnerability], Field(max_length=MAX_SCAN_REPORT_VULNERABILITIES)]
