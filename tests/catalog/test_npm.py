"""npm packages installed by npm from the registry, against ``npm ls``."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from vigil.catalog import catalog_rootfs

from .conftest import cache_dir

NPM_PACKAGES = ("lodash@4.17.15", "@types/ms@0.7.31", "debug@2.6.8")


@pytest.fixture(scope="module")
def npm_app():
    target = cache_dir() / ("npm-" + "-".join(p.replace("/", "_").replace("@", "") for p in NPM_PACKAGES))
    if (target / "node_modules").is_dir():
        return target
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "package.json").write_text('{"name": "vigil-test-app", "version": "1.0.0", "private": true}')
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", *NPM_PACKAGES],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"npm could not install {NPM_PACKAGES} from the registry: {proc.stderr.strip()[-300:]}")
    tmp.rename(target)
    return target


def npm_ls(app) -> set[tuple[str, str]]:
    tree = json.loads(
        subprocess.run(["npm", "ls", "--all", "--json"], cwd=app, capture_output=True, text=True, check=True).stdout
    )
    out = set()

    def walk(deps):
        for name, info in (deps or {}).items():
            out.add((name, info["version"]))
            walk(info.get("dependencies"))

    walk(tree.get("dependencies"))
    return out


def test_npm_packages_equal_npm_ls(npm_app, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(npm_app, root / "srv/app", symlinks=True)
    result = catalog_rootfs(root)
    assert {(p.name, p.version) for p in result.packages_of("npm")} == npm_ls(npm_app)
    assert result.warnings == []
    types_ms = next(p for p in result.packages if p.name == "@types/ms")
    assert types_ms.purl == "pkg:npm/%40types/ms@0.7.31"
    assert types_ms.found_in == "/srv/app/node_modules/@types/ms/package.json"
    assert "/srv/app/node_modules/@types/ms/index.d.ts" in types_ms.files
    debug = next(p for p in result.packages if p.name == "debug")
    assert not any("/node_modules/ms/" in f for f in debug.files)  # its dependency owns those
