"""Java archives laid out as Maven, Tomcat, Jenkins and sbt publish them, built here with ``zipfile``
(the JDK's ``jar`` would write the same zip entries): the coordinates each declaration gives, ears
of wars of jars, and nesting that is refused (too deep, too big, a cycle).

Manifest and pom texts follow the published artifacts: Tomcat's manifests as in
``tomcat-embed-core-10.1.8.jar`` and ``catalina.jar`` of Tomcat 9 (Apache-2.0), a Maven
``pom.properties`` as maven-archiver writes it, guava's ``pom.xml`` (its group id inherited from
``guava-parent``), a Jenkins plugin's manifest as maven-hpi-plugin writes it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from vigil.catalog import catalog_rootfs
from vigil.catalog.catalogers.base import CatalogContext
from vigil.catalog.catalogers.java import JavaArchiveCataloger, _Nesting
from vigil.catalog.limits import ScanBudget, ScanLimits
from vigil.catalog.warnings import WarningSink


def archive(entries: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def maven_jar(group: str, artifact: str, version: str, classes: str = "") -> bytes:
    """A jar as maven-jar-plugin writes it: manifest, pom.properties and pom.xml under
    META-INF/maven/<group>/<artifact>/, then the classes."""
    base = f"META-INF/maven/{group}/{artifact}"
    return archive(
        {
            "META-INF/MANIFEST.MF": "Manifest-Version: 1.0\r\nCreated-By: Maven JAR Plugin 3.3.0\r\n"
            f"Build-Jdk-Spec: 11\r\nImplementation-Title: {artifact}\r\nImplementation-Version: {version}\r\n\r\n",
            f"{base}/pom.properties": f"artifactId={artifact}\ngroupId={group}\nversion={version}\n",
            f"{base}/pom.xml": f"<project><modelVersion>4.0.0</modelVersion><groupId>{group}</groupId>"
            f"<artifactId>{artifact}</artifactId><version>{version}</version></project>",
            f"{classes or group.replace('.', '/')}/Main.class": b"\xca\xfe\xba\xbe",
        }
    )


def manifest_jar(manifest: str, classes: str = "org/example/A.class") -> bytes:
    return archive({"META-INF/MANIFEST.MF": manifest.replace("\n", "\r\n"), classes: b"\xca\xfe\xba\xbe"})


TOMCAT_EMBED_CORE_MANIFEST = """Manifest-Version: 1.0
Bundle-ManifestVersion: 2
Bundle-Name: tomcat-embed-core
Bundle-SymbolicName: org.apache.tomcat-embed-core
Bundle-Version: 10.1.8
Implementation-Title: Apache Tomcat
Implementation-Vendor: Apache Software Foundation
Implementation-Version: 10.1.8
Specification-Title: Apache Tomcat
Specification-Vendor: Apache Software Foundation
Specification-Version: 10.1
X-Compile-Source-JDK: 11
X-Compile-Target-JDK: 11

Name: jakarta/security/auth/message/
Implementation-Title: jakarta.security.auth.message
Implementation-Version: 3.0

"""


def tomcat_lib_manifest(bundle: str, version: str = "9.0.71") -> str:
    return (
        "Manifest-Version: 1.0\nBundle-ManifestVersion: 2\n"
        f"Bundle-Name: tomcat-{bundle}\nBundle-SymbolicName: org.apache.tomcat-{bundle}\nBundle-Version: {version}\n"
        "Implementation-Title: Apache Tomcat\nImplementation-Vendor: Apache Software Foundation\n"
        f"Implementation-Version: {version}\nSpecification-Title: Apache Tomcat\nSpecification-Version: 9.0\n\n"
    )


GUAVA_POM = b"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <parent>
    <groupId>com.google.guava</groupId>
    <artifactId>guava-parent</artifactId>
    <version>31.1-jre</version>
  </parent>
  <artifactId>guava</artifactId>
  <packaging>bundle</packaging>
  <name>Guava: Google Core Libraries for Java</name>
  <dependencies>
    <dependency><groupId>com.google.guava</groupId><artifactId>failureaccess</artifactId>
      <version>1.0.1</version></dependency>
  </dependencies>
</project>
"""


def catalog_tree(root: Path, files: dict[str, bytes], limits: ScanLimits | None = None):
    for path, data in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return catalog_rootfs(root, limits=limits)


def listing(result) -> list[tuple[str, str, str, str]]:
    return sorted((p.name, p.version, p.found_in, p.metadata["from"]) for p in result.packages if p.type == "maven")


def test_an_ear_of_a_war_of_jars_lists_every_level(tmp_path):
    web = archive(
        {
            "WEB-INF/web.xml": "<web-app/>",
            "META-INF/maven/com.example/shop-web/pom.properties": "groupId=com.example\nartifactId=shop-web\n"
            "version=4.2.0\n",
            "WEB-INF/lib/jackson-core-2.15.2.jar": maven_jar("com.fasterxml.jackson.core", "jackson-core", "2.15.2"),
            "WEB-INF/lib/commons-text-1.9.jar": maven_jar("org.apache.commons", "commons-text", "1.9"),
        }
    )
    ear = archive(
        {
            "META-INF/application.xml": "<application/>",
            "META-INF/maven/com.example/shop-ear/pom.properties": "groupId=com.example\nartifactId=shop-ear\n"
            "version=4.2.0\n",
            "shop-web.war": web,
            "lib/log4j-core-2.14.1.jar": maven_jar("org.apache.logging.log4j", "log4j-core", "2.14.1"),
        }
    )
    result = catalog_tree(tmp_path, {"/opt/jboss/deployments/shop.ear": ear})
    assert result.warnings == []
    ear_path = "/opt/jboss/deployments/shop.ear"
    assert listing(result) == [
        ("com.example:shop-ear", "4.2.0", ear_path, "pom.properties"),
        ("com.example:shop-web", "4.2.0", f"{ear_path}:shop-web.war", "pom.properties"),
        (
            "com.fasterxml.jackson.core:jackson-core",
            "2.15.2",
            f"{ear_path}:shop-web.war:WEB-INF/lib/jackson-core-2.15.2.jar",
            "pom.properties",
        ),
        (
            "org.apache.commons:commons-text",
            "1.9",
            f"{ear_path}:shop-web.war:WEB-INF/lib/commons-text-1.9.jar",
            "pom.properties",
        ),
        ("org.apache.logging.log4j:log4j-core", "2.14.1", f"{ear_path}:lib/log4j-core-2.14.1.jar", "pom.properties"),
    ]
    jackson = next(p for p in result.packages if p.name.endswith("jackson-core"))
    assert jackson.purl == "pkg:maven/com.fasterxml.jackson.core/jackson-core@2.15.2"
    assert jackson.files == [ear_path]  # the image file that holds it


def test_tomcat_lib_jars_get_their_maven_coordinates_not_the_title(tmp_path):
    lib = "/usr/local/tomcat/lib"
    result = catalog_tree(
        tmp_path,
        {
            f"{lib}/catalina.jar": manifest_jar(tomcat_lib_manifest("catalina"), "org/apache/catalina/A.class"),
            f"{lib}/tomcat-util.jar": manifest_jar(tomcat_lib_manifest("util"), "org/apache/tomcat/util/A.class"),
            f"{lib}/catalina-tribes.jar": manifest_jar(tomcat_lib_manifest("tribes")),
            "/app/BOOT-INF/lib/tomcat-embed-core-10.1.8.jar": manifest_jar(TOMCAT_EMBED_CORE_MANIFEST),
        },
    )
    assert result.warnings == []
    assert listing(result) == [
        (
            "org.apache.tomcat.embed:tomcat-embed-core",
            "10.1.8",
            "/app/BOOT-INF/lib/tomcat-embed-core-10.1.8.jar",
            "MANIFEST.MF",
        ),
        ("org.apache.tomcat:tomcat-catalina", "9.0.71", f"{lib}/catalina.jar", "MANIFEST.MF"),
        ("org.apache.tomcat:tomcat-tribes", "9.0.71", f"{lib}/catalina-tribes.jar", "MANIFEST.MF"),
        ("org.apache.tomcat:tomcat-util", "9.0.71", f"{lib}/tomcat-util.jar", "MANIFEST.MF"),
    ]


def test_pom_xml_without_pom_properties_inherits_the_group_from_its_parent(tmp_path):
    guava = archive(
        {
            "META-INF/MANIFEST.MF": "Manifest-Version: 1.0\r\nBundle-SymbolicName: com.google.guava\r\n\r\n",
            "META-INF/maven/com.google.guava/guava/pom.xml": GUAVA_POM,
            "com/google/common/base/Optional.class": b"\xca\xfe\xba\xbe",
        }
    )
    result = catalog_tree(tmp_path, {"/app/lib/guava.jar": guava})
    assert result.warnings == []
    assert listing(result) == [("com.google.guava:guava", "31.1-jre", "/app/lib/guava.jar", "pom.xml")]


def test_a_pom_properties_without_group_id_takes_its_directory_name(tmp_path):
    jar = archive({"META-INF/maven/org.example/tool/pom.properties": "artifactId=tool\nversion=3.1\n"})
    result = catalog_tree(tmp_path, {"/app/tool.jar": jar})
    assert result.warnings == []
    assert listing(result) == [("org.example:tool", "3.1", "/app/tool.jar", "pom.properties")]


def test_a_pom_xml_with_entities_or_no_version_is_a_warning(tmp_path):
    laughs = b'<?xml version="1.0"?><!DOCTYPE project [<!ENTITY a "aaaa">]><project><version>&a;</version></project>'
    result = catalog_tree(
        tmp_path,
        {
            "/app/laughs.jar": archive({"META-INF/maven/x/laughs/pom.xml": laughs}),
            "/app/noversion.jar": archive(
                {"META-INF/maven/x/nov/pom.xml": b"<project><artifactId>nov</artifactId></project>"}
            ),
            "/app/profile.jar": archive(
                {"META-INF/maven/x/prof/pom.xml": b"<project><version>${revision}</version></project>"}
            ),
        },
    )
    assert result.packages == []
    assert [str(w) for w in result.warnings] == [
        "/app/laughs.jar [META-INF/maven/x/laughs/pom.xml]: pom.xml skipped: has a DOCTYPE or ENTITY declaration; "
        "not parsed",
        "/app/noversion.jar [META-INF/maven/x/nov/pom.xml]: pom.xml skipped: no version, not even from <parent>",
        "/app/profile.jar [META-INF/maven/x/prof/pom.xml]: pom.xml skipped: no version, not even from <parent>",
    ]


def test_file_names_split_where_the_archive_says(tmp_path):
    sbt_manifest = (
        "Manifest-Version: 1.0\nImplementation-Vendor-Id: com.fasterxml.jackson.core\n"
        "Implementation-Version: 2.15.2\nBundle-SymbolicName: com.fasterxml.jackson.core.jackson-core\n\n"
    )
    result = catalog_tree(
        tmp_path,
        {
            # sbt's lib_managed layout: group.artifact-version.jar
            "/app/lib/com.fasterxml.jackson.core.jackson-core-2.15.2.jar": manifest_jar(sbt_manifest),
            # the same name with only the symbolic name to confirm the group
            "/app/lib/org.scala-lang.scala-library-2.13.8.jar": manifest_jar(
                "Manifest-Version: 1.0\nBundle-SymbolicName: org.scala-lang.scala-library\n"
                "Bundle-Version: 2.13.8.v20220107\n\n"
            ),
            # a version with a digit in the artifact: split where Implementation-Version says
            "/app/lib/log4j-1.2-api-2.17.1.jar": manifest_jar(
                "Manifest-Version: 1.0\nImplementation-Vendor-Id: org.apache.logging.log4j\n"
                "Implementation-Title: Apache Log4j 1.x Compatibility API\nImplementation-Version: 2.17.1\n\n"
            ),
            # nothing declared: the file name alone, no group
            "/app/lib/json-simple-1.1.1.jar": manifest_jar("Manifest-Version: 1.0\n\n"),
            # no name-version, nothing declared: not a package, said so
            "/app/lib/helpers.jar": manifest_jar("Manifest-Version: 1.0\nCreated-By: 17 (Debian)\n\n"),
        },
    )
    assert listing(result) == [
        (
            "com.fasterxml.jackson.core:jackson-core",
            "2.15.2",
            "/app/lib/com.fasterxml.jackson.core.jackson-core-2.15.2.jar",
            "MANIFEST.MF",
        ),
        ("json-simple", "1.1.1", "/app/lib/json-simple-1.1.1.jar", "file name"),
        ("org.apache.logging.log4j:log4j-1.2-api", "2.17.1", "/app/lib/log4j-1.2-api-2.17.1.jar", "MANIFEST.MF"),
        (
            "org.scala-lang:scala-library",
            "2.13.8.v20220107",
            "/app/lib/org.scala-lang.scala-library-2.13.8.jar",
            "MANIFEST.MF",
        ),
    ]
    assert [str(w) for w in result.warnings] == [
        "/app/lib/helpers.jar: Java archive has no Maven coordinates and no version; skipped"
    ]


def test_par_hpi_and_jpi_archives_are_read(tmp_path):
    hpi_manifest = (
        "Manifest-Version: 1.0\nCreated-By: Maven Archiver 3.6.0\nGroup-Id: org.jenkins-ci.plugins\n"
        "Short-Name: git\nLong-Name: Jenkins Git plugin\nImplementation-Version: 4.11.0\nPlugin-Version: 4.11.0\n"
        "Hudson-Version: 2.263.1\nJenkins-Version: 2.263.1\nExtension-Name: git\n\n"
    )
    hpi = archive(
        {
            "META-INF/MANIFEST.MF": hpi_manifest.replace("\n", "\r\n"),
            "WEB-INF/lib/git.jar": maven_jar("org.jenkins-ci.plugins", "git", "4.11.0"),
            "WEB-INF/lib/joda-time-2.9.5.jar": maven_jar("joda-time", "joda-time", "2.9.5"),
        }
    )
    jpi = manifest_jar(hpi_manifest.replace("Short-Name: git", "Short-Name: git-client").replace("4.11.0", "3.11.0"))
    par = archive({"META-INF/persistence.xml": "<persistence/>", **{"lib/x.jar": maven_jar("org.example", "x", "1.0")}})
    result = catalog_tree(
        tmp_path,
        {
            "/var/jenkins_home/plugins/git.hpi": hpi,
            "/var/jenkins_home/plugins/git-client.jpi": jpi,
            "/opt/app/orders-1.3.par": par,
        },
    )
    home = "/var/jenkins_home/plugins"
    assert result.warnings == []
    assert listing(result) == [
        ("joda-time:joda-time", "2.9.5", f"{home}/git.hpi:WEB-INF/lib/joda-time-2.9.5.jar", "pom.properties"),
        ("orders", "1.3", "/opt/app/orders-1.3.par", "file name"),
        ("org.example:x", "1.0", "/opt/app/orders-1.3.par:lib/x.jar", "pom.properties"),
        ("org.jenkins-ci.plugins:git", "4.11.0", f"{home}/git.hpi", "MANIFEST.MF"),
        ("org.jenkins-ci.plugins:git", "4.11.0", f"{home}/git.hpi:WEB-INF/lib/git.jar", "pom.properties"),
        ("org.jenkins-ci.plugins:git-client", "3.11.0", f"{home}/git-client.jpi", "MANIFEST.MF"),
    ]


def test_an_agent_without_maven_identity_is_not_a_package_but_what_it_shades_is(tmp_path):
    agent_manifest = (
        "Manifest-Version: 1.0\nPremain-Class: io.opentelemetry.javaagent.OpenTelemetryAgent\n"
        "Agent-Class: io.opentelemetry.javaagent.OpenTelemetryAgent\nCan-Retransform-Classes: true\n"
        "Implementation-Title: javaagent\nImplementation-Version: 1.32.0\n\n"
    )
    shading = archive(
        {
            "META-INF/MANIFEST.MF": agent_manifest.replace("1.32.0", "2.0.0").replace("\n", "\r\n"),
            "META-INF/maven/net.bytebuddy/byte-buddy/pom.properties": "groupId=net.bytebuddy\n"
            "artifactId=byte-buddy\nversion=1.14.10\n",
        }
    )
    result = catalog_tree(
        tmp_path,
        {
            "/otel/opentelemetry-javaagent-1.32.0.jar": manifest_jar(agent_manifest),
            "/otel/shading-agent.jar": shading,
        },
    )
    assert result.warnings == []
    assert listing(result) == [("net.bytebuddy:byte-buddy", "1.14.10", "/otel/shading-agent.jar", "pom.properties")]


def test_nested_archives_past_the_total_size_are_refused_naming_the_archive(tmp_path):
    inner = maven_jar("org.example", "inner", "1.0")
    size = len(inner)
    war = archive({f"WEB-INF/lib/inner{i}.jar": inner for i in range(4)})
    result = catalog_tree(tmp_path, {"/app/bomb.war": war}, limits=ScanLimits(max_nested_archive_bytes=3 * size))
    assert listing(result) == [
        ("org.example:inner", "1.0", f"/app/bomb.war:WEB-INF/lib/inner{i}.jar", "pom.properties") for i in range(3)
    ]
    assert [str(w) for w in result.warnings] == [
        "/app/bomb.war [WEB-INF/lib/inner3.jar]: nested Java archive skipped: the archives nested in /app/bomb.war "
        f"would inflate to {4 * size} bytes, over the limit max_nested_archive_bytes "
        f"(VIGIL_SCAN_MAX_NESTED_ARCHIVE_BYTES={3 * size})"
    ]
    assert result.incomplete is True


def test_an_ear_war_jar_chain_is_within_the_default_depth_and_one_more_level_is_not(tmp_path):
    jar = maven_jar("org.example", "leaf", "1.0")
    war = archive({"WEB-INF/lib/leaf.jar": jar})
    ear = archive({"web.war": war})
    deeper = archive({"inner.ear": ear})
    result = catalog_tree(tmp_path, {"/app/a.ear": ear, "/app/b.ear": deeper})
    assert listing(result) == [("org.example:leaf", "1.0", "/app/a.ear:web.war:WEB-INF/lib/leaf.jar", "pom.properties")]
    assert [str(w) for w in result.warnings] == [
        "/app/b.ear:inner.ear:web.war [WEB-INF/lib/leaf.jar]: nested Java archive skipped: deeper than the limit "
        "max_archive_depth (VIGIL_SCAN_MAX_ARCHIVE_DEPTH=3)"
    ]


def test_an_archive_that_contains_its_own_container_is_a_cycle(tmp_path):
    """A zip quine (an archive whose member is the archive itself, like r.zip) cannot be written
    here without a hand-made deflate stream, so the archives met on the way down are given the
    digest the quine would have: the member's own."""
    inner = maven_jar("org.example", "inner", "1.0")
    outer = archive(
        {
            "META-INF/maven/org.example/outer/pom.properties": "groupId=org.example\nartifactId=outer\nversion=2\n",
            "lib/inner.jar": inner,
        }
    )
    warnings = WarningSink()
    ctx = CatalogContext(os=None, warnings=warnings, workdir=tmp_path, budget=ScanBudget())
    nesting = _Nesting("/app/outer.jar", ancestors=[(hashlib.sha256(inner).hexdigest(), "/app/outer.jar")])
    found = JavaArchiveCataloger()._archive(io.BytesIO(outer), "/app/outer.jar", "/app/outer.jar", ctx, 1, nesting)
    assert [(p.name, p.version) for p in found] == [("org.example:outer", "2")]
    assert [str(w) for w in warnings.items] == [
        "/app/outer.jar:lib/inner.jar: nested Java archive skipped: it is /app/outer.jar, which contains it (a cycle)"
    ]
    assert warnings.incomplete is True
