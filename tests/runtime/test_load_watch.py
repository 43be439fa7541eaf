"""The interest set: which package files a container's sensor watches being opened (pure)."""

from __future__ import annotations

from vigil.service.analysis.runtime.load_watch import InterestPackage, interest_set, package_paths

SP = "/usr/local/lib/python3.11/site-packages"
DP = "/usr/lib/python3/dist-packages"


def test_python_package_directory_and_top_level_module() -> None:
    jinja = InterestPackage(
        "pypi",
        f"{SP}/Jinja2-2.10.dist-info/METADATA",
        (
            f"{SP}/jinja2/__init__.py",
            f"{SP}/jinja2/sandbox.py",
            f"{SP}/jinja2/__pycache__/sandbox.cpython-311.pyc",
            f"{SP}/Jinja2-2.10.dist-info/RECORD",
            f"{SP}/Jinja2-2.10.dist-info/METADATA",
        ),
    )
    six = InterestPackage(
        "pypi",
        f"{SP}/six-1.0.dist-info/METADATA",
        (f"{SP}/six.py", f"{SP}/__pycache__/six.cpython-311.pyc", "/usr/local/bin/six-tool"),
    )
    assert package_paths(jinja) == {f"{SP}/jinja2/"}
    assert package_paths(six) == {f"{SP}/six.py", f"{SP}/__pycache__/six.cpython-311.pyc"}
    got = interest_set([jinja, six])
    assert got.paths == (f"{SP}/__pycache__/six.cpython-311.pyc", f"{SP}/jinja2/", f"{SP}/six.py")
    assert got.left_out == 0


def test_relative_record_paths_are_made_absolute() -> None:
    pkg = InterestPackage(
        "pypi", "usr/lib/python3/dist-packages/a-1.dist-info/METADATA", ("usr/lib/python3/dist-packages/a/x.py",)
    )
    assert package_paths(pkg) == {f"{DP}/a/"}


def test_npm_package_directory_scoped_and_nested() -> None:
    lodash = InterestPackage("npm", "/app/node_modules/lodash/package.json", ("/app/node_modules/lodash/lodash.js",))
    scoped = InterestPackage("npm", "/app/node_modules/@babel/core/package.json", ())
    nested = InterestPackage("npm", "/app/node_modules/a/node_modules/minimist/package.json", ())
    assert package_paths(lodash) == {"/app/node_modules/lodash/"}
    assert package_paths(scoped) == {"/app/node_modules/@babel/core/"}
    assert package_paths(nested) == {"/app/node_modules/a/node_modules/minimist/"}


def test_jar_is_watched_exactly_the_outer_one_for_a_nested_jar() -> None:
    log4j = InterestPackage("maven", "/opt/app/lib/log4j-core-2.14.1.jar", ())
    # As the Java cataloger records a nested jar: found_in with its place inside, files the archive on disk.
    nested = InterestPackage("maven", "/opt/app/app.jar:BOOT-INF/lib/commons-text-1.9.jar", ("/opt/app/app.jar",))
    assert interest_set([log4j, nested]).paths == ("/opt/app/app.jar", "/opt/app/lib/log4j-core-2.14.1.jar")


def test_os_package_contributes_its_interpreter_directories_only() -> None:
    deb = InterestPackage(
        "deb",
        "/var/lib/dpkg/status",
        (f"{DP}/jinja2/__init__.py", "/usr/share/doc/python3-jinja2/copyright", "/usr/lib/x86_64-linux-gnu/libz.so.1"),
    )
    golang = InterestPackage("golang", "/app/server", ("/app/server",))
    assert interest_set([deb, golang]).paths == (f"{DP}/jinja2/",)


def test_a_path_under_a_watched_prefix_is_not_listed_twice() -> None:
    outer = InterestPackage("npm", "/app/node_modules/a/package.json", ())
    inner = InterestPackage("npm", "/app/node_modules/a/node_modules/b/package.json", ())
    assert interest_set([outer, inner]).paths == ("/app/node_modules/a/",)


def test_cap_and_paths_too_long_for_the_kernel_are_counted() -> None:
    many = [InterestPackage("maven", f"/lib/j{i:03d}.jar", ()) for i in range(10)]
    long = InterestPackage("maven", "/" + "d" * 300 + ".jar", ())
    got = interest_set([*many, long], cap=4)
    assert got.paths == ("/lib/j000.jar", "/lib/j001.jar", "/lib/j002.jar", "/lib/j003.jar")
    assert got.left_out == 7


def _image():
    from vigil.service.analysis.runtime.evaluate import ImageView
    from vigil.service.analysis.runtime.model import PackageRef, VulnerabilityRef
    from vigil.service.analysis.runtime.paths import ImageFileSystem

    files = {f"{SP}/jinja2/__init__.py": "1" * 64, f"{SP}/jinja2/utils.py": "2" * 64, f"{SP}/six.py": "3" * 64}
    jinja = PackageRef(1, "pypi", "Jinja2", "2.10", "pkg:pypi/jinja2@2.10")
    six = PackageRef(2, "pypi", "six", "1.0", "pkg:pypi/six@1.0")
    vuln = VulnerabilityRef(1, "PYSEC-1", "PYSEC-1", ("PYSEC-1",), ("CVE-1",), "high", 7.5, ("2.10.1",), False, "s")
    return ImageView.build(
        "sha256:" + "f" * 64,
        ImageFileSystem(files, {}),
        [(jinja, [f"{SP}/jinja2/__init__.py", f"{SP}/jinja2/utils.py"]), (six, [f"{SP}/six.py"])],
        [vuln],
    )


def _load(target: str):
    from datetime import UTC, datetime

    from vigil.service.analysis.runtime.model import Activity, ActivitySample

    t = datetime(2026, 1, 1, tzinfo=UTC)
    s = ActivitySample(t, 42, 1, 0, "python3", "/usr/bin/python3.11", ("python3", "-c", "import jinja2"))
    return Activity(1, "c1", "n1", "containerd://x", None, "package_load", target, False, {}, t, t, 3, (s,))


def test_a_loaded_file_is_attributed_to_its_package_and_its_advisory_runs() -> None:
    from vigil.service.analysis.runtime.loads import load_detections, owners_of
    from vigil.service.analysis.runtime.model import ContainerProcesses, Workload

    image = _image()
    wl = Workload("c1", "prod", "shop", "Deployment", "web", "web-1", "app", 7, "reg/web:1", "sha256:" + "f" * 64)
    # bytecode written at run time is in no RECORD: the package owning its directory's files.
    assert owners_of(image, f"{SP}/jinja2/__pycache__/utils.cpython-311.pyc") == [1]
    assert owners_of(image, f"{SP}/six.py") == [2] and owners_of(image, f"{SP}/other/x.py") == []
    (d,) = load_detections(_load(f"{SP}/jinja2/utils.py"), wl, image, ContainerProcesses(None, frozenset()))
    assert (d.type, d.severity, d.subject, d.key) == (
        "running_vulnerability",
        "critical",
        "Jinja2 2.10 (PYSEC-1) running",
        "PYSEC-1|pypi/Jinja2@2.10",
    )
    assert d.evidence["reason"] == (
        "loaded by /usr/bin/python3.11 (python3 -c import jinja2) at 2026-01-01T00:00:00+00:00"
    )
    assert d.evidence["file"] == {
        "path": f"{SP}/jinja2/utils.py",
        "image_path": f"{SP}/jinja2/utils.py",
        "sha256": "2" * 64,
        "kind": "package_load",
    }
    assert d.evidence["process"]["argv"] == ["python3", "-c", "import jinja2"]
    assert d.evidence["process"]["container"]["pod"] == "web-1"
    # six has no known vulnerability: its load is no finding.
    assert load_detections(_load(f"{SP}/six.py"), wl, image, ContainerProcesses(None, frozenset())) == []
