"""Nested jars: the JVM opens the fat jar (or war, or ear) and reads the jars inside it, so an open of the outer
archive stands for the vulnerable jars nested in it, by containment; a jar of an exploded directory stands for
itself alone. Pure attribution on hand-made rows, then the same on what the real Java cataloger records for a
Spring Boot jar, an ear of a war and an exploded war on disk."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from vigil.catalog import catalog_rootfs
from vigil.service.analysis.runtime.evaluate import ImageView
from vigil.service.analysis.runtime.jars import ArchivePlace, archive_place
from vigil.service.analysis.runtime.load_watch import InterestPackage, interest_set
from vigil.service.analysis.runtime.loads import Attribution, attribute, load_detections
from vigil.service.analysis.runtime.model import (
    Activity,
    ActivitySample,
    ContainerProcesses,
    PackageRef,
    VulnerabilityRef,
    Workload,
)
from vigil.service.analysis.runtime.paths import ImageFileSystem

APP = "/app/app.jar"
LOG4J = "BOOT-INF/lib/log4j-core-2.14.1.jar"
EXPLODED = "/usr/local/tomcat/webapps/shop/WEB-INF/lib/commons-text-1.9.jar"
T = datetime(2026, 1, 1, tzinfo=UTC)
WL = Workload("c1", "prod", "shop", "Deployment", "web", "web-1", "app", 7, "reg/web:1", "sha256:" + "f" * 64)


def vuln(package_id: int, vid: str, severity: str = "critical") -> VulnerabilityRef:
    return VulnerabilityRef(package_id, vid, vid, (vid,), (), severity, None, ("9.9",), False, f"{vid} summary")


def java_load(target: str) -> Activity:
    argv = ("java", "-jar", APP)
    s = ActivitySample(T, 42, 1, 0, "java", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java", argv)
    return Activity(1, "c1", "n1", "containerd://x", None, "package_load", target, False, {}, T, T, 1, (s,))


def test_archive_place_of_each_catalog_row() -> None:
    assert archive_place(APP, [APP]) == ArchivePlace(APP, "")
    assert archive_place(f"{APP}:{LOG4J}", [APP]) == ArchivePlace(APP, LOG4J)
    ear = "/srv/shop.ear"
    assert archive_place(f"{ear}:web.war:WEB-INF/lib/x.jar", [ear]) == ArchivePlace(ear, "web.war:WEB-INF/lib/x.jar")
    assert archive_place(EXPLODED, [EXPLODED]) == ArchivePlace(EXPLODED, "")
    # A row without files names its found_in, never a guess at where a ':' splits it.
    assert archive_place("/a:b.jar", []) == ArchivePlace("/a:b.jar", "")
    assert archive_place("", []) is None


def test_the_watched_path_of_a_nested_jar_is_the_archive_on_disk() -> None:
    nested = InterestPackage("maven", f"{APP}:{LOG4J}", (APP,))
    exploded = InterestPackage("maven", EXPLODED, (EXPLODED,))
    assert interest_set([nested, exploded]).paths == (APP, EXPLODED)


def _image() -> ImageView:
    files = {APP: "a" * 64, EXPLODED: "b" * 64, "/app/lib/other.jar": "c" * 64}
    app = PackageRef(1, "maven", "com.example:app", "1.0", "pkg:maven/com.example/app@1.0", APP)
    log4j = PackageRef(
        2,
        "maven",
        "org.apache.logging.log4j:log4j-core",
        "2.14.1",
        "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
        f"{APP}:{LOG4J}",
    )
    text = PackageRef(
        3,
        "maven",
        "org.apache.commons:commons-text",
        "1.9",
        "pkg:maven/org.apache.commons/commons-text@1.9",
        EXPLODED,
    )
    return ImageView.build(
        "sha256:" + "f" * 64,
        ImageFileSystem(files, {}),
        [(app, [APP]), (log4j, [APP]), (text, [EXPLODED])],
        [vuln(2, "CVE-2021-44228"), vuln(3, "CVE-2022-42889", "high")],
    )


def test_an_opened_fat_jar_stands_for_itself_and_by_containment_for_its_nested_jars() -> None:
    image = _image()
    assert attribute(image, APP) == [Attribution(1, "file"), Attribution(2, "containment", LOG4J)]
    assert attribute(image, EXPLODED) == [Attribution(3, "file")]
    assert attribute(image, "/app/lib/other.jar") == []


def test_the_nested_jar_runs_by_containment_and_the_evidence_says_so() -> None:
    image = _image()
    # com.example:app has no vulnerability: only log4j's advisory runs.
    (d,) = load_detections(java_load(APP), WL, image, ContainerProcesses(None, frozenset()))
    assert (d.type, d.severity, d.subject, d.key) == (
        "running_vulnerability",
        "critical",
        "org.apache.logging.log4j:log4j-core 2.14.1 (CVE-2021-44228) running",
        "CVE-2021-44228|maven/org.apache.logging.log4j:log4j-core@2.14.1",
    )
    assert d.evidence["reason"] == (
        "loaded by /usr/lib/jvm/java-17-openjdk-amd64/bin/java (java -jar /app/app.jar) at 2026-01-01T00:00:00+00:00"
        "; org.apache.logging.log4j:log4j-core 2.14.1 is the jar BOOT-INF/lib/log4j-core-2.14.1.jar inside"
        " /app/app.jar, which the process opened (the kernel sees only the outer archive)"
    )
    assert d.evidence["attribution"] == {
        "how": "containment",
        "archive": APP,
        "entry": LOG4J,
        "found_in": f"{APP}:{LOG4J}",
    }
    assert d.evidence["file"] == {"path": APP, "image_path": APP, "sha256": "a" * 64, "kind": "package_load"}


def test_a_jar_of_an_exploded_directory_runs_as_itself() -> None:
    (d,) = load_detections(java_load(EXPLODED), WL, _image(), ContainerProcesses(None, frozenset()))
    assert d.key == "CVE-2022-42889|maven/org.apache.commons:commons-text@1.9"
    assert d.evidence["attribution"] == {"how": "file"}
    assert "inside" not in d.evidence["reason"]


def _archive(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def _maven_jar(group: str, artifact: str, version: str) -> bytes:
    base = f"META-INF/maven/{group}/{artifact}"
    return _archive(
        {
            f"{base}/pom.properties": f"groupId={group}\nartifactId={artifact}\nversion={version}\n".encode(),
            f"{group.replace('.', '/')}/Main.class": b"\xca\xfe\xba\xbe",
        }
    )


def test_what_the_java_cataloger_records_is_watched_and_attributed_exactly(tmp_path: Path) -> None:
    """A Spring Boot jar with log4j nested, an ear holding a war holding commons-text, and the same commons-text
    in an exploded war on disk: each vulnerable jar's watched path is the file on disk, and each open attributes
    exactly what that file holds."""
    ear = "/srv/shop.ear"
    war = _archive(
        {
            "META-INF/maven/com.example/shop-web/pom.properties": b"groupId=com.example\nartifactId=shop-web\n"
            b"version=4.2.0\n",
            "WEB-INF/lib/commons-text-1.9.jar": _maven_jar("org.apache.commons", "commons-text", "1.9"),
        }
    )
    tree = {
        APP: _archive(
            {
                "META-INF/maven/com.example/app/pom.properties": b"groupId=com.example\nartifactId=app\nversion=1.0\n",
                LOG4J: _maven_jar("org.apache.logging.log4j", "log4j-core", "2.14.1"),
            }
        ),
        ear: _archive({"shop-web.war": war}),
        EXPLODED: _maven_jar("org.apache.commons", "commons-text", "1.9"),
    }
    for path, data in tree.items():
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    result = catalog_rootfs(tmp_path)
    assert result.warnings == []
    rows = sorted((p for p in result.packages if p.type == "maven"), key=lambda p: p.found_in)
    refs = [(PackageRef(i, p.type, p.name, p.version, p.purl or "", p.found_in), p.files) for i, p in enumerate(rows)]
    ids = {(ref.name, ref.found_in): ref.id for ref, _ in refs}
    nested_text = ids[("org.apache.commons:commons-text", f"{ear}:shop-web.war:WEB-INF/lib/commons-text-1.9.jar")]
    exploded_text = ids[("org.apache.commons:commons-text", EXPLODED)]
    log4j = ids[("org.apache.logging.log4j:log4j-core", f"{APP}:{LOG4J}")]
    vulnerable = {log4j: "CVE-2021-44228", nested_text: "CVE-2022-42889", exploded_text: "CVE-2022-42889"}
    watched = interest_set(
        InterestPackage(ref.type, ref.found_in, tuple(files)) for ref, files in refs if ref.id in vulnerable
    )
    assert watched.paths == (APP, ear, EXPLODED)
    fs = ImageFileSystem({path: hashlib.sha256(data).hexdigest() for path, data in tree.items()}, {})
    image = ImageView.build("sha256:" + "e" * 64, fs, refs, [vuln(pid, vid) for pid, vid in sorted(vulnerable.items())])
    assert attribute(image, APP) == [
        Attribution(ids[("com.example:app", APP)], "file"),
        Attribution(log4j, "containment", LOG4J),
    ]
    assert attribute(image, ear) == [
        Attribution(ids[("com.example:shop-web", f"{ear}:shop-web.war")], "containment", "shop-web.war"),
        Attribution(nested_text, "containment", "shop-web.war:WEB-INF/lib/commons-text-1.9.jar"),
    ]
    assert attribute(image, EXPLODED) == [Attribution(exploded_text, "file")]
    (d,) = load_detections(java_load(ear), WL, image, ContainerProcesses(None, frozenset()))
    assert d.evidence["attribution"]["entry"] == "shop-web.war:WEB-INF/lib/commons-text-1.9.jar"
    assert d.key == "CVE-2022-42889|maven/org.apache.commons:commons-text@1.9"
