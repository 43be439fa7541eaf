"""Issue 5's acceptance, end to end on real parts: an image built from a debootstrap'ed Debian
rootfs, PyPI wheels at old versions and a Go binary built by Debian, pushed to a real
docker-registry; the service scans it once its digest shows up in ingested inventory. The
package list is compared with dpkg-query, pip list --path and go version -m; the findings
with advisories computed here straight from the OSV records."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from catalog.conftest import cache_dir
from catalog.test_go import expected_packages as go_expected_packages
from vigil.catalog.layout_writer import TarLayer, add_layer, write_image, write_index
from vigil.devtools.service import LiveService

from .expected import GO, PYPA, go_stdlib_advisories, pypi_advisories
from .helpers import (
    client_for,
    content_findings,
    image_pk,
    import_advisories,
    post,
    push_layout,
    run_scans,
    snapshot,
    use_registry,
    write_record,
)

SITE = "usr/lib/python3/dist-packages"
GOFMT = "usr/lib/go-1.19/bin/gofmt"  # where golang-1.19-go installs it


@pytest.fixture(scope="module")
def layout(debian_rootfs, python_site, debian_go_binary) -> Path:
    """The image as an OCI layout, built once and cached beside the real parts it is made of
    (keyed by them: a rebuilt rootfs or another Go binary makes a new one)."""
    key = hashlib.sha256(
        "\0".join(
            [
                str((debian_rootfs / "var/lib/dpkg/status").stat().st_mtime_ns),
                python_site.parent.name,
                hashlib.sha256(debian_go_binary.read_bytes()).hexdigest(),
            ]
        ).encode()
    ).hexdigest()[:16]
    out = cache_dir() / f"scanner-image-{key}"
    if (out / "index.json").is_file():
        return out
    work = cache_dir() / f"scanner-image-{key}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    base = TarLayer(work / "base.tar")
    base.add_tree(debian_rootfs)
    base.close()
    apps = TarLayer(work / "apps.tar")
    apps.add_path(python_site, SITE)
    apps.add_path(debian_go_binary, GOFMT)
    apps.close()
    layout_dir = work / "layout"
    written = [add_layer(layout_dir, work / "base.tar", "gzip"), add_layer(layout_dir, work / "apps.tar", "gzip")]
    write_index(layout_dir, [write_image(layout_dir, written)])
    layout_dir.rename(out)
    shutil.rmtree(work)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory, registry, layout):
    """A live service with advisories (PyPA + Go) imported, the image pushed and running in
    workload shop/web, scanned through POST /api/v1/scans/run."""
    data = tmp_path_factory.mktemp("svc")
    svc = LiveService(data / "data").start()
    try:
        import_advisories(svc.settings.intel_db, PYPA, GO)
        worker = use_registry(svc, registry.host)
        repo = f"{registry.host}/acceptance/app"
        with client_for(registry.host) as pusher:
            digest = push_layout(pusher, f"{repo}:1.0", layout)
        cid, cred = svc.register("prod")
        post(svc, cred, snapshot(cid, [("shop", "web", f"{repo}:1.0", digest)]))
        report = run_scans(svc)
        yield {
            "svc": svc,
            "worker": worker,
            "digest": digest,
            "repo": repo,
            "cid": cid,
            "cred": cred,
            "report": report,
            "pk": image_pk(svc, cid, "web"),
            "data": data,
        }
    finally:
        svc.stop()


def all_pages(svc, path: str, **params) -> list[dict]:
    items, after = [], None
    while True:
        r = svc.get(path, **params, **({"after": after} if after else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["items"])
        after = body["next"]
        if not after:
            return items


def test_scanned_once_with_status(world):
    svc, digest = world["svc"], world["digest"]
    assert [s["digest"] for s in world["report"]["scanned"]] == [digest]
    assert world["report"]["scanned"][0]["status"] == "done"
    scan = svc.get(f"/api/v1/images/{world['pk']}/scan").json()
    assert scan["status"] == "done" and scan["error"] is None
    assert scan["manifest_digest"] == digest  # a single-platform image: the manifest itself
    assert scan["source"] == world["repo"]
    assert scan["os"]["id"] == "debian" and scan["os"]["version_id"] == "12"
    assert scan["attempts"] == 1
    assert scan["warnings"] == []


def test_packages_equal_the_distributions_own_tools(world, debian_rootfs, python_site, debian_go_binary):
    svc = world["svc"]
    packages = all_pages(svc, f"/api/v1/images/{world['pk']}/packages", limit=100)
    deb = sorted(f"{p['name']} {p['version']}" for p in packages if p["type"] == "deb")
    dpkg = subprocess.run(
        ["dpkg-query", f"--admindir={debian_rootfs}/var/lib/dpkg", "-W", "-f", "${Package} ${Version}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert deb == sorted(dpkg.splitlines())
    pip = json.loads(
        subprocess.run(
            [sys.executable, "-m", "pip", "list", "--path", str(python_site), "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert sorted((p["name"], p["version"]) for p in packages if p["type"] == "pypi") == sorted(
        (d["name"], d["version"]) for d in pip
    )
    go, _ = go_expected_packages(debian_go_binary)
    assert sorted((p["name"], p["version"]) for p in packages if p["type"] == "golang") == go
    assert {p["type"] for p in packages} == {"deb", "pypi", "golang"}
    bash = next(p for p in packages if p["name"] == "bash")
    assert "/bin/bash" in bash["files"] and bash["ecosystem"] == "Debian:12"  # as dpkg lists it (usrmerge)
    urllib3 = next(p for p in packages if p["name"] == "urllib3")
    assert urllib3["found_in"] == f"/{SITE}/urllib3-1.26.4.dist-info/METADATA"
    assert f"/{SITE}/urllib3/poolmanager.py" in urllib3["files"]


def test_file_manifest_paginated(world, debian_rootfs, debian_go_binary):
    svc, pk = world["svc"], world["pk"]
    first = svc.get(f"/api/v1/images/{pk}/files", limit=50).json()
    assert len(first["items"]) == 50 and first["next"]
    files = all_pages(svc, f"/api/v1/images/{pk}/files", limit=1000)
    paths = [f["path"] for f in files]
    assert paths == sorted(paths) and len(paths) == len(set(paths))
    assert paths[:50] == [f["path"] for f in first["items"]]
    by_path = {f["path"]: f for f in files}
    bash = by_path["/usr/bin/bash"]
    real = (debian_rootfs / "usr/bin/bash").read_bytes()
    assert (bash["sha256"], bash["size"], bash["mode"], bash["executable"]) == (
        hashlib.sha256(real).hexdigest(),
        len(real),
        "0755",
        True,
    )
    gofmt = by_path[f"/{GOFMT}"]
    assert gofmt["sha256"] == hashlib.sha256(debian_go_binary.read_bytes()).hexdigest()
    assert by_path["/bin"] == {"path": "/bin", "kind": "symlink", "target": "usr/bin"}
    # the runtime join: which image files have this content
    hit = svc.get(f"/api/v1/images/{pk}/files", sha256=bash["sha256"]).json()["items"]
    assert [f["path"] for f in hit] == ["/usr/bin/bash"]
    n_files = sum(1 for f in files if f["kind"] == "file")
    assert svc.get(f"/api/v1/images/{pk}/scan").json()["files"] == len(files) and n_files > 5000


@pytest.mark.parametrize("name,version", [("urllib3", "1.26.4"), ("Jinja2", "2.10"), ("idna", "2.8")])
def test_pypi_findings_equal_the_records(world, name, version):
    expected = pypi_advisories(name, version)
    assert expected, f"the records name no advisory for {name} {version}: the test would prove nothing"
    found = [f for f in content_findings(world["svc"], status="open") if f["evidence"]["package"]["name"] == name]
    got = {i for f in found for i in f["evidence"]["advisory_ids"]}
    assert got == set(expected)
    for f in found:
        ev = f["evidence"]
        assert f["type"] == "vulnerable_package" and f["cluster_id"] == world["cid"]
        assert (f["namespace"], f["workload"]) == ("shop", {"kind": "Deployment", "name": "web"})
        assert f["image_pk"] == world["pk"]
        assert ev["installed_version"] == version and ev["package"]["type"] == "pypi"
        ids = set(ev["advisory_ids"])
        assert set(ev["aliases"]) == ids | {a for i in ids for a in expected[i]}
        assert ev["fixed_versions"] and ev["links"]
        assert f["severity"] == ev["severity"]["level"]


def test_urllib3_details(world):
    [f] = [
        f
        for f in content_findings(world["svc"], status="open")
        if f["evidence"]["package"]["name"] == "urllib3" and "PYSEC-2023-192" in f["evidence"]["advisory_ids"]
    ]
    ev = f["evidence"]
    assert ev["vulnerability"] == "CVE-2023-43804"
    assert ev["fixed_versions"] == ["1.26.17", "2.0.6"]
    assert (f["severity"], ev["severity"]["score"]) == ("high", 8.1)


def test_go_stdlib_findings_equal_the_records(world, debian_go_binary):
    stdlib = [f for f in content_findings(world["svc"], status="open") if f["evidence"]["package"]["name"] == "stdlib"]
    version = stdlib[0]["evidence"]["installed_version"]
    assert version == "1.19.8"
    assert {i for f in stdlib for i in f["evidence"]["advisory_ids"]} == go_stdlib_advisories(version)
    assert {f["evidence"]["package"]["found_in"] for f in stdlib} == {f"/{GOFMT}"}


def test_vulnerabilities_api_matches_findings(world):
    svc = world["svc"]
    vulns = all_pages(svc, f"/api/v1/images/{world['pk']}/vulnerabilities", limit=20)
    findings = content_findings(svc, status="open")
    assert sorted((v["package"]["name"], v["id"]) for v in vulns) == sorted(
        (f["evidence"]["package"]["name"], f["evidence"]["vulnerability"]) for f in findings
    )
    high = svc.get(f"/api/v1/images/{world['pk']}/vulnerabilities", severity="high").json()["items"]
    assert high and all(v["severity"]["level"] == "high" for v in high)
    bad = svc.get(f"/api/v1/images/{world['pk']}/vulnerabilities", severity="severe")
    assert bad.status_code == 422 and "'severe' not one of critical, high, medium, low, unknown" in bad.json()["detail"]


def test_malicious_record_and_new_advisory_rematch_without_pulling(world, tmp_path):
    svc, worker = world["svc"], world["worker"]
    requests_before, scans_before = worker.client.stats.requests, worker.scans
    mal = {
        "id": "MAL-2025-0001",
        "modified": "2025-01-01T00:00:00Z",
        "summary": "Malicious code in idna (PyPI)",
        "details": "The package was replaced with a credential stealer.",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "idna"}, "versions": ["2.8"]}],
        "references": [{"type": "WEB", "url": "https://example.org/mal/idna"}],
    }
    new = {
        "id": "GHSA-vigl-test-0001",
        "modified": "2025-01-02T00:00:00Z",
        "aliases": ["CVE-2099-0001"],
        "summary": "A test advisory for Jinja2",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "jinja2"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.5"}]}],
            }
        ],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "references": [{"type": "ADVISORY", "url": "https://example.org/GHSA-vigl-test-0001"}],
    }
    import_advisories(svc.settings.intel_db, write_record(tmp_path, mal), write_record(tmp_path, new))
    r = httpx.post(
        f"{svc.url}/api/v1/intel/reload", headers={"Authorization": f"Bearer {svc.admin_token}"}, timeout=120
    )
    assert r.status_code == 200, r.text
    assert r.json()["matched"] == 1 and r.json()["intel_reloaded"] is True
    assert (worker.client.stats.requests, worker.scans) == (requests_before, scans_before)  # nothing pulled again
    open_now = content_findings(svc, status="open")
    [m] = [f for f in open_now if f["type"] == "malicious_package"]
    assert (m["severity"], m["evidence"]["package"]["name"], m["evidence"]["advisory_ids"]) == (
        "critical",
        "idna",
        ["MAL-2025-0001"],
    )
    assert m["evidence"]["malicious"] is True
    [g] = [f for f in open_now if "GHSA-vigl-test-0001" in f["evidence"]["advisory_ids"]]
    assert (g["severity"], g["evidence"]["vulnerability"], g["evidence"]["fixed_versions"]) == (
        "critical",
        "CVE-2099-0001",
        ["3.1.5"],
    )
    malicious = svc.get(f"/api/v1/images/{world['pk']}/vulnerabilities", malicious="true").json()["items"]
    assert [(v["id"], v["package"]["name"]) for v in malicious] == [("MAL-2025-0001", "idna")]


def test_second_container_same_digest_is_not_scanned_again(world):
    svc, worker, digest = world["svc"], world["worker"], world["digest"]
    requests_before, scans_before = worker.client.stats.requests, worker.scans
    image = f"{world['repo']}:1.0"
    post(
        svc, world["cred"], snapshot(world["cid"], [("shop", "web", image, digest), ("shop", "worker", image, digest)])
    )
    report = run_scans(svc)
    assert report["scanned"] == [] and report["queued"]["queued"] == 0
    assert (worker.client.stats.requests, worker.scans) == (requests_before, scans_before)
    web = {
        f["evidence"]["vulnerability"]
        for f in content_findings(svc, status="open", namespace="shop")
        if f["workload"]["name"] == "web"
    }
    other = {
        f["evidence"]["vulnerability"]
        for f in content_findings(svc, status="open", namespace="shop")
        if f["workload"]["name"] == "worker"
    }
    assert web and web == other  # each workload running the image gets the findings
    assert svc.get(f"/api/v1/images/{world['pk']}/scan").json()["attempts"] == 1


def test_findings_resolve_when_the_image_stops_running(world):
    svc = world["svc"]
    assert content_findings(svc, status="open")
    post(svc, world["cred"], snapshot(world["cid"], []))
    run_scans(svc)
    assert content_findings(svc, status="open") == []
    resolved = content_findings(svc, status="resolved")
    assert resolved and {f["status_reason"] for f in resolved} == {"the workload no longer runs this image"}
