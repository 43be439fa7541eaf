"""Java archives from a Debian package (libcommons-lang3-java: the jar as Maven built it, with its
pom.properties, pom.xml and bnd-written manifest), plain, nested in a war, and with its Maven
metadata taken out so that each later rule of the coordinate order has to find them."""

from __future__ import annotations

import io
import shutil
import zipfile

from vigil.catalog import catalog_rootfs
from vigil.catalog.catalogers.java import parse_properties


def jar_coordinates(jar):
    with zipfile.ZipFile(jar) as z:
        name = next(n for n in z.namelist() if n.endswith("/pom.properties"))
        return parse_properties(z.read(name).decode())


def test_jar_and_nested_jar(commons_lang3_jar, tmp_path):
    props = jar_coordinates(commons_lang3_jar)
    root = tmp_path / "root"
    (root / "opt/app/lib").mkdir(parents=True)
    shutil.copyfile(commons_lang3_jar, root / "opt/app/lib/commons-lang3.jar")
    with zipfile.ZipFile(root / "opt/app/app.war", "w") as war:
        war.writestr("WEB-INF/web.xml", "<web-app/>")
        war.write(commons_lang3_jar, "WEB-INF/lib/commons-lang3.jar")
        war.writestr(
            "META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nImplementation-Title: shop\nImplementation-Version: 4.2\n\n"
        )
    result = catalog_rootfs(root)
    assert result.warnings == []
    got = sorted((p.name, p.version, p.found_in, p.files[0]) for p in result.packages)
    coords = f"{props['groupId']}:{props['artifactId']}"
    assert got == [
        # the war's own name is its file's: Implementation-Title is a display title, not an artifact id
        ("app", "4.2", "/opt/app/app.war", "/opt/app/app.war"),
        (coords, props["version"], "/opt/app/app.war:WEB-INF/lib/commons-lang3.jar", "/opt/app/app.war"),
        (coords, props["version"], "/opt/app/lib/commons-lang3.jar", "/opt/app/lib/commons-lang3.jar"),
    ]
    lang = next(p for p in result.packages if p.found_in == "/opt/app/lib/commons-lang3.jar")
    assert lang.purl == f"pkg:maven/org.apache.commons/commons-lang3@{props['version']}"
    assert lang.ecosystem == "Maven"


def test_corrupt_jar_is_a_warning(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "broken.jar").write_bytes(b"PK\x03\x04 not really a zip")
    result = catalog_rootfs(root)
    assert result.packages == []
    assert [str(w) for w in result.warnings] == ["/broken.jar: Java archive skipped: File is not a zip file"]


def without(jar, *prefixes: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(jar) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if not info.filename.startswith(prefixes):
                out.writestr(info, src.read(info))
    return buf.getvalue()


def test_each_rule_of_the_coordinate_order_on_the_real_jar(commons_lang3_jar, tmp_path):
    version = jar_coordinates(commons_lang3_jar)["version"]
    maven_dir = "META-INF/maven/org.apache.commons/commons-lang3/"
    root = tmp_path / "root"
    lib = root / "opt/lib"
    lib.mkdir(parents=True)
    (lib / "a/commons-lang3.jar").parent.mkdir()
    shutil.copyfile(commons_lang3_jar, lib / "a/commons-lang3.jar")
    (lib / "b").mkdir()
    (lib / "b/commons-lang3.jar").write_bytes(without(commons_lang3_jar, maven_dir + "pom.properties"))
    (lib / "c").mkdir()
    (lib / "c/commons-lang3.jar").write_bytes(without(commons_lang3_jar, "META-INF/maven/"))
    (lib / "d").mkdir()
    sbt_name = f"org.apache.commons.commons-lang3-{version}.jar"
    (lib / "d" / sbt_name).write_bytes(without(commons_lang3_jar, "META-INF/maven/"))
    result = catalog_rootfs(root)
    assert result.warnings == []
    assert sorted((p.found_in, p.name, p.version, p.metadata["from"]) for p in result.packages) == [
        ("/opt/lib/a/commons-lang3.jar", "org.apache.commons:commons-lang3", version, "pom.properties"),
        ("/opt/lib/b/commons-lang3.jar", "org.apache.commons:commons-lang3", version, "pom.xml"),
        # no Maven files: Implementation-Version, and the group Bundle-SymbolicName org.apache.commons.lang3 confirms
        ("/opt/lib/c/commons-lang3.jar", "org.apache.commons:commons-lang3", version, "MANIFEST.MF"),
        (f"/opt/lib/d/{sbt_name}", "org.apache.commons:commons-lang3", version, "MANIFEST.MF"),
    ]
