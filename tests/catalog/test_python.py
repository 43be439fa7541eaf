"""PyPI wheels at old versions, installed by pip, against ``pip list --path``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from vigil.catalog import catalog_rootfs


def test_python_packages_equal_pip_list(python_site, tmp_path):
    root = tmp_path / "root"
    site = root / "usr/lib/python3/dist-packages"
    shutil.copytree(python_site, site, symlinks=True)
    result = catalog_rootfs(root)
    pip = json.loads(
        subprocess.run(
            [sys.executable, "-m", "pip", "list", "--path", str(site), "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert sorted((p.name, p.version) for p in result.packages_of("pypi")) == sorted(
        (d["name"], d["version"]) for d in pip
    )
    assert result.warnings == []
    by = {p.name: p for p in result.packages}
    urllib3 = by["urllib3"]
    assert (urllib3.version, urllib3.purl, urllib3.ecosystem) == ("1.26.4", "pkg:pypi/urllib3@1.26.4", "PyPI")
    assert urllib3.found_in == "/usr/lib/python3/dist-packages/urllib3-1.26.4.dist-info/METADATA"
    assert "/usr/lib/python3/dist-packages/urllib3/poolmanager.py" in urllib3.files
    assert by["Jinja2"].purl == "pkg:pypi/jinja2@2.10"
    # RECORD lists every installed file: they are all in the manifest
    for p in result.packages_of("pypi"):
        assert set(p.files) <= set(result.manifest.files), p.name


def test_egg_info_file_and_dir(tmp_path):
    # egg-info as written by setuptools' install (a dir) and by distutils (a file)
    root = tmp_path / "root"
    site = root / "usr/lib/python3/dist-packages"
    (site / "foo.egg-info").mkdir(parents=True)
    (site / "foo.egg-info/PKG-INFO").write_text("Metadata-Version: 1.1\nName: foo\nVersion: 0.1\n")
    (site / "foo.egg-info/installed-files.txt").write_text("../foo/__init__.py\nPKG-INFO\n")
    (site / "bar-2.0.egg-info").write_text("Metadata-Version: 1.0\nName: bar\nVersion: 2.0\n")
    (site / "broken.egg-info").write_text("Metadata-Version: 1.0\nName: broken\n")
    result = catalog_rootfs(root)
    assert [(p.name, p.version, p.files) for p in result.packages] == [
        ("bar", "2.0", []),
        (
            "foo",
            "0.1",
            ["/usr/lib/python3/dist-packages/foo/__init__.py", "/usr/lib/python3/dist-packages/foo.egg-info/PKG-INFO"],
        ),
    ]
    assert [str(w) for w in result.warnings] == [
        "/usr/lib/python3/dist-packages/broken.egg-info [broken]: distribution skipped: metadata has no Name or "
        "no Version"
    ]


def test_pip_itself_in_a_venv(tmp_path):
    # the interpreter's own pip: a real dist-info written by a real installer
    import pip

    dist = next(p for p in (shutil.os.path.dirname(pip.__file__) + "/..",))
    root = tmp_path / "root"
    target = root / "usr/lib/python3.11/site-packages"
    target.mkdir(parents=True)
    src = __import__("pathlib").Path(dist).resolve()
    info = next(src.glob(f"pip-{pip.__version__}.dist-info"))
    shutil.copytree(info, target / info.name)
    result = catalog_rootfs(root)
    [pkg] = result.packages
    assert (pkg.name, pkg.version) == ("pip", pip.__version__)


def importlib_metadata_list(site) -> list[tuple[str, str]]:
    """The referee: what importlib.metadata lists in that directory, in a clean interpreter."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps(sorted([d.metadata['Name'], d.version] for d in m.distributions(path=[sys.argv[1]]))))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code, str(site)], capture_output=True, text=True, check=True)
    return [tuple(x) for x in json.loads(out.stdout)]


def test_metadata_directories_in_any_letter_case_as_importlib_metadata_lists_them(tmp_path):
    root = tmp_path / "root"
    site = root / "usr/local/lib/python3.11/site-packages"
    for directory, name, version in (
        ("Shouty.DIST-INFO", "Shouty", "1.0"),
        ("mixed-2.0.Dist-Info", "mixed", "2.0"),
        ("OldStyle-0.3.EGG-INFO", "OldStyle", "0.3"),
        ("plain-1.1.dist-info", "plain", "1.1"),
    ):
        (site / directory).mkdir(parents=True)
        meta = "PKG-INFO" if directory.lower().endswith(".egg-info") else "METADATA"
        (site / directory / meta).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (site / "Single-4.2.Egg-Info").write_text("Metadata-Version: 1.1\nName: Single\nVersion: 4.2\n")
    expected = importlib_metadata_list(site)
    assert len(expected) == 5
    result = catalog_rootfs(root)
    assert result.warnings == []
    assert sorted((p.name, p.version) for p in result.packages) == expected


def test_the_interpreters_own_egg_info_is_not_a_pypi_package(tmp_path):
    """CPython's make install (and Debian's python2.7) writes lib-dynload/Python-X.Y.egg-info:
    importlib.metadata lists it as "Python", but it is the interpreter, which no PyPI advisory is about."""
    root = tmp_path / "root"
    dynload = root / "usr/lib/python2.7/lib-dynload"
    dynload.mkdir(parents=True)
    (dynload / "Python-2.7.egg-info").write_text(
        "Metadata-Version: 1.0\nName: Python\nVersion: 2.7.18\nSummary: A high-level object-oriented programming "
        "language\n"
    )
    (dynload / "argparse-1.2.1.egg-info").write_text("Metadata-Version: 1.0\nName: argparse\nVersion: 1.2.1\n")
    assert importlib_metadata_list(dynload) == [("Python", "2.7.18"), ("argparse", "1.2.1")]
    result = catalog_rootfs(root)
    assert result.warnings == []
    assert [(p.name, p.version) for p in result.packages] == [("argparse", "1.2.1")]
