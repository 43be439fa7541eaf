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
    nested = InterestPackage("maven", "/opt/app/app.jar!/BOOT-INF/lib/commons-text-1.9.jar", ())
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
